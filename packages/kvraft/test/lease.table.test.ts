/**
 * Proves the replicated lease table: grants get fresh ids, keep-alives renew, revocation and expiry
 * hand back the attached keys, an expiry decided before a renewal is void, keys move between
 * leases, checkpoints are bounded by the TTL, and the table survives its snapshot form (and a
 * corrupt one is refused). Also proves each replica's deadlines: lease time follows the monotonic
 * clock, a leap of that clock counts for at most one step, and a lease is expired only once its
 * time is up.
 */
import { describe, expect, test } from "bun:test"
import { LeaseDeadlines } from "../src/lease/leaseDeadlines.ts"
import { LeaseTable } from "../src/lease/leaseTable.ts"

describe("LeaseTable", () => {
  test("grant, keep-alive, revoke: ids never reused, keys handed back sorted", () => {
    const t = new LeaseTable()
    const a = t.grant(5_000)
    const b = t.grant(2_000)
    expect([a.id, b.id]).toEqual([1, 2])
    t.attach("k2", a.id)
    t.attach("k1", a.id)
    expect(t.keepAlive(a.id)).toMatchObject({ renewals: 1, remainingMs: 5_000 })
    expect(t.revoke(a.id)).toEqual(["k1", "k2"])
    expect(t.leaseOf("k1")).toBeUndefined()
    expect(t.revoke(a.id)).toBeUndefined()
    expect(t.keepAlive(a.id)).toBeUndefined()
    expect(t.grant(1_000).id).toBe(3)
  })

  test("an expiry decided before a keep-alive was applied is void", () => {
    const t = new LeaseTable()
    const a = t.grant(5_000)
    t.attach("k", a.id)
    t.keepAlive(a.id)
    expect(t.expire(a.id, 0)).toBeUndefined()
    expect(t.has(a.id)).toBe(true)
    expect(t.expire(a.id, 1)).toEqual(["k"])
    expect(t.has(a.id)).toBe(false)
  })

  test("a key belongs to one lease at a time; detach leaves the lease", () => {
    const t = new LeaseTable()
    const a = t.grant(5_000)
    const b = t.grant(5_000)
    t.attach("k", a.id)
    t.attach("k", b.id)
    expect(t.get(a.id)?.keys).toEqual([])
    expect(t.get(b.id)?.keys).toEqual(["k"])
    t.detach("k")
    expect(t.get(b.id)?.keys).toEqual([])
    expect(() => t.attach("k", 99)).toThrow()
  })

  test("checkpoints record time left within [0, ttl] and skip unknown leases", () => {
    const t = new LeaseTable()
    const a = t.grant(5_000)
    expect(
      t.checkpoint([
        [a.id, 1_234, 0],
        [77, 10, 0],
      ]),
    ).toEqual([a.id])
    expect(t.get(a.id)?.remainingMs).toBe(1_234)
    t.checkpoint([[a.id, 99_999, 0]])
    expect(t.get(a.id)?.remainingMs).toBe(5_000)
    t.checkpoint([[a.id, -5, 0]])
    expect(t.get(a.id)?.remainingMs).toBe(0)
  })

  test("a checkpoint counted before a keep-alive that was applied first is void for that lease", () => {
    const t = new LeaseTable()
    const a = t.grant(5_000)
    // The leader counted 300 ms left at renewals 0; the keep-alive it had not applied yet came first.
    t.keepAlive(a.id)
    expect(t.checkpoint([[a.id, 300, 0]])).toEqual([])
    expect(t.get(a.id)?.remainingMs).toBe(5_000)
    expect(t.checkpoint([[a.id, 300, 1]])).toEqual([a.id])
    expect(t.get(a.id)?.remainingMs).toBe(300)
  })

  test("survives its snapshot form; corrupt forms are refused", () => {
    const t = new LeaseTable()
    const a = t.grant(5_000)
    t.grant(3_000)
    t.attach("x", a.id)
    t.keepAlive(a.id)
    t.revoke(2)
    const keys = new Set(["x"])
    const restored = LeaseTable.fromSnapshot(structuredClone(t.toSnapshot()), (k) => keys.has(k))
    expect(restored.all()).toEqual(t.all())
    expect(restored.grant(1_000).id).toBe(3)
    expect(() => LeaseTable.fromSnapshot([0], () => true)).toThrow()
    expect(() => LeaseTable.fromSnapshot([2, [1, 5_000, 0, 5_000, ["gone"]]], () => false)).toThrow()
    expect(() => LeaseTable.fromSnapshot([2, [5, 5_000, 0, 5_000, []]], () => true)).toThrow()
    expect(() => LeaseTable.fromSnapshot("nope", () => true)).toThrow()
  })
})

describe("LeaseDeadlines", () => {
  test("lease time follows the monotonic clock; a leap counts for one step at most", () => {
    let m = 1_000
    const d = new LeaseDeadlines(() => m, 500)
    d.set(1, 1_000)
    m += 400
    expect(d.remaining(1)).toBe(600)
    m += 60 * 60 * 1000
    expect(d.remaining(1)).toBe(100)
    expect(d.expired()).toEqual([])
    m += 100
    expect(d.expired()).toEqual([1])
    m -= 10_000
    expect(d.remaining(1)).toBe(0)
  })

  test("checkpoint rows carry each lease's time left, in whole milliseconds rounded up", () => {
    let m = 0.25
    const d = new LeaseDeadlines(() => m)
    d.set(2, 3_000)
    d.set(1, 1_000)
    m += 500.5
    expect(d.snapshotRemaining()).toEqual([
      [1, 500],
      [2, 2_500],
    ])
    d.delete(1)
    expect(d.remaining(1)).toBeUndefined()
  })
})
