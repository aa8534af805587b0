/** Proves that the leader's bookkeeping — quorum arithmetic, per-follower progress, ReadIndex rounds, the PRNG — is exact. */
import { describe, expect, test } from "bun:test"
import {
  Inflights,
  majority,
  Progress,
  quorumValue,
  ReadOnly,
  type ReadState,
  Rng,
  voteResult,
} from "../src/core/index.ts"

describe("quorum", () => {
  test("a majority of n voters is floor(n/2)+1", () => {
    expect([1, 2, 3, 4, 5, 7].map(majority)).toEqual([1, 2, 2, 3, 3, 4])
  })

  test("§5.3 the commit candidate is the highest index a majority stores", () => {
    expect(quorumValue([5])).toBe(5)
    expect(quorumValue([9, 3, 5])).toBe(5)
    expect(quorumValue([1, 9, 9, 2, 2])).toBe(2)
    expect(quorumValue([7, 7, 1, 1])).toBe(1)
  })

  test("§5.2 a vote is won with a majority of grants and lost once a majority is out of reach", () => {
    const voters = [1, 2, 3, 4, 5]
    expect(voteResult(voters, new Map([[1, true]]))).toBe("pending")
    expect(
      voteResult(
        voters,
        new Map([
          [1, true],
          [2, true],
          [3, true],
        ]),
      ),
    ).toBe("won")
    expect(
      voteResult(
        voters,
        new Map([
          [1, true],
          [2, false],
          [3, false],
        ]),
      ),
    ).toBe("pending")
    expect(
      voteResult(
        voters,
        new Map([
          [1, true],
          [2, false],
          [3, false],
          [4, false],
        ]),
      ),
    ).toBe("lost")
    expect(voteResult([1], new Map([[1, true]]))).toBe("won")
  })
})

describe("Inflights", () => {
  test("is a bounded window freed by acknowledgements, wrapping around its buffer", () => {
    const w = new Inflights(3)
    w.add(2)
    w.add(4)
    w.add(6)
    expect(w.full()).toBe(true)
    expect(() => w.add(8)).toThrow("full")
    w.freeLE(4)
    expect(w.count).toBe(1)
    w.add(8)
    w.add(10)
    expect(w.full()).toBe(true)
    w.freeLE(9)
    expect(w.count).toBe(1)
    w.freeLE(100)
    expect(w.count).toBe(0)
  })
})

describe("Progress", () => {
  test("probe sends one Append at a time; replicate pipelines up to the window; snapshot sends none", () => {
    const pr = new Progress(2, 2)
    pr.resetForLeader(10)
    expect(pr.state).toBe("probe")
    expect(pr.next).toBe(11)
    expect(pr.isPaused()).toBe(false)
    pr.probeSent = true
    expect(pr.isPaused()).toBe(true)
    expect(pr.maybeUpdate(10)).toBe(true)
    expect(pr.isPaused()).toBe(false)
    pr.becomeReplicate()
    expect(pr.next).toBe(11)
    pr.inflights.add(12)
    pr.inflights.add(14)
    expect(pr.isPaused()).toBe(true)
    pr.becomeSnapshot({ index: 20, term: 2, data: new Uint8Array() })
    expect(pr.isPaused()).toBe(true)
    expect(pr.inflights.count).toBe(0)
  })

  test("old acknowledgements do not move match back; next never falls behind match", () => {
    const pr = new Progress(2, 4)
    pr.resetForLeader(3)
    expect(pr.maybeUpdate(7)).toBe(true)
    expect(pr.next).toBe(8)
    expect(pr.maybeUpdate(5)).toBe(false)
    expect(pr.match).toBe(7)
    pr.becomeProbe()
    expect(pr.next).toBe(8)
  })
})

describe("ReadOnly (§6.4)", () => {
  const voters = [1, 2, 3, 4, 5]

  test("reads asked for before a flush share one round, answered at the commit index of its send", () => {
    const ro = new ReadOnly()
    ro.join(100)
    ro.join(101)
    const round = ro.takeOpen(42)
    expect(round).toBe(1)
    expect(ro.takeOpen(43)).toBeUndefined()
    const out: ReadState[] = []
    ro.ack(2, 1, 1, voters, out)
    expect(out).toEqual([])
    ro.ack(3, 1, 1, voters, out)
    expect(out).toEqual([
      { requestId: 100, index: 42 },
      { requestId: 101, index: 42 },
    ])
    expect(ro.pending()).toBe(0)
  })

  test("an acknowledgement of a later round also confirms the earlier ones", () => {
    const ro = new ReadOnly()
    ro.join(1)
    ro.takeOpen(10)
    ro.join(2)
    ro.takeOpen(11)
    expect(ro.latestSentRound()).toBe(2)
    const out: ReadState[] = []
    ro.ack(4, 2, 1, voters, out)
    ro.ack(5, 2, 1, voters, out)
    expect(out).toEqual([
      { requestId: 1, index: 10 },
      { requestId: 2, index: 11 },
    ])
  })

  test("an acknowledgement of an earlier round does not confirm a later one", () => {
    const ro = new ReadOnly()
    ro.join(1)
    ro.takeOpen(10)
    ro.join(2)
    ro.takeOpen(11)
    const out: ReadState[] = []
    ro.ack(2, 1, 1, voters, out)
    ro.ack(3, 2, 1, voters, out)
    expect(out).toEqual([{ requestId: 1, index: 10 }])
    ro.ack(2, 2, 1, voters, out)
    expect(out.at(-1)).toEqual({ requestId: 2, index: 11 })
  })

  test("deferred reads wait outside any round; reset drops everything", () => {
    const ro = new ReadOnly()
    ro.defer(7)
    ro.join(8)
    expect(ro.pending()).toBe(2)
    expect(ro.takeDeferred()).toEqual([7])
    expect(ro.pending()).toBe(1)
    ro.reset()
    expect(ro.pending()).toBe(0)
    expect(ro.takeOpen(1)).toBeUndefined()
  })
})

describe("Rng", () => {
  test("one seed gives one sequence; different seeds differ", () => {
    const a = new Rng(7)
    const b = new Rng(7)
    const c = new Rng(8)
    const xs = Array.from({ length: 8 }, () => a.nextU32())
    expect(Array.from({ length: 8 }, () => b.nextU32())).toEqual(xs)
    expect(Array.from({ length: 8 }, () => c.nextU32())).not.toEqual(xs)
  })

  test("nextInt stays in range and covers it", () => {
    const r = new Rng(1)
    const seen = new Set<number>()
    for (let i = 0; i < 1000; i++) {
      const v = r.nextInt(10)
      expect(v >= 0 && v < 10).toBe(true)
      seen.add(v)
    }
    expect(seen.size).toBe(10)
  })
})
