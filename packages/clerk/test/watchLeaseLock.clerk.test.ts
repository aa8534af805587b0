/**
 * Proves that the clerk's watch, leases, locks and elections work against real processes: a watch
 * delivers every change in revision order as it happens and stops when the loop is left (or the
 * clerk closes), and replays from an earlier revision; keys on a lease go when it is revoked or
 * runs out, and stay while the clerk keeps it alive; a handle learns its lease was lost; a lock
 * excludes other holders, its token grows, a waiter gives up with LockTimeout; an election has one
 * leader at a time; on the sharded service a watch spans shards while leases and locks are refused
 * with KvraftOnly before anything is sent.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { shardOf } from "@kv/shardctrler"
import { pollUntil } from "@kv/testkit"
import { Effect, Fiber, Stream } from "effect"
import {
  type Clerk,
  connect,
  Kv,
  KvraftOnly,
  type LeaseLost,
  LeaseNotFound,
  LockTimeout,
  type WatchEvent,
} from "../src/index.ts"
import { type LocalCluster, startLocalCluster } from "./support/localCluster.ts"

let cluster: LocalCluster
const clerks: Clerk[] = []

beforeAll(async () => {
  cluster = await startLocalCluster("kv-wll-clerk", [100])
}, 90_000)

afterAll(async () => {
  for (const clerk of clerks) await clerk.close().catch(() => {})
  await cluster?.stop()
})

const open = async (service: "kvraft" | "sharded" = "kvraft"): Promise<Clerk> => {
  const clerk = await connect({ config: cluster.config, service, deadlineMs: 30_000 })
  clerks.push(clerk)
  return clerk
}

/** Resolves with `promise`, or rejects after `ms` naming `what`. */
const within = <A>(what: string, ms: number, promise: Promise<A>): Promise<A> => {
  let timer: Timer | undefined
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)
    }),
  ])
}

/** The first `n` events of a watch, then leaves the loop (which stops the watch). */
const take = async (events: AsyncIterable<WatchEvent>, n: number): Promise<WatchEvent[]> => {
  const out: WatchEvent[] = []
  if (n === 0) return out
  for await (const event of events) {
    out.push(event)
    if (out.length === n) break
  }
  return out
}

const pending: unique symbol = Symbol("pending")
/** The promise's value if it has settled by the next turn of the event loop, else `pending`. */
const settledYet = <A>(promise: Promise<A>): Promise<A | typeof pending> =>
  Promise.race([promise, Bun.sleep(0).then((): typeof pending => pending)])

describe("watch through the clerk", () => {
  test("on kvraft: every change of a prefix in revision order as it happens; a replay from an earlier revision; leaving the loop stops it", async () => {
    const kv = await open()
    const watcher = await open()
    // From the revision after a write made before it, so the watch cannot start after the writes.
    const base = await kv.put("w-base", "0", { ifAbsent: true })
    const seen = take(watcher.watch({ prefix: "w/" }, { fromRevision: base.revision + 1 }), 4)
    const first = await kv.put("w/a", "1", { ifAbsent: true })
    await kv.put("w/b", "2")
    await kv.put("other", "x")
    await kv.delete("w/a")
    await kv.put("w/a", "3")
    const events = await within("the watch's events", 20_000, seen)
    expect(events.map((e) => [e.type, e.key, e.value])).toEqual([
      ["put", "w/a", "1"],
      ["put", "w/b", "2"],
      ["delete", "w/a", undefined],
      ["put", "w/a", "3"],
    ])
    expect(events[0]!.modRevision).toBe(first.revision)
    const revisions = events.map((e) => e.modRevision)
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b))
    expect(new Set(revisions).size).toBe(4)

    // From an earlier revision, the same history again; one key alone.
    const replay = await within("the replay", 20_000, take(watcher.watch("w/a", { fromRevision: first.revision }), 3))
    expect(replay.map((e) => [e.type, e.value])).toEqual([
      ["put", "1"],
      ["delete", undefined],
      ["put", "3"],
    ])
  }, 60_000)

  test("closing the clerk ends its watches and its waits for a lock", async () => {
    const holder = await open()
    const held = await holder.lock("closing")
    const watcher = await connect({ config: cluster.config, service: "kvraft", deadlineMs: 30_000 })
    const seen: WatchEvent[] = []
    const loop = (async () => {
      for await (const event of watcher.watch({ prefix: "closing/" })) seen.push(event)
      return "ended"
    })()
    const waiting = watcher.lock("closing").then(
      () => "taken",
      () => "rejected",
    )
    expect(await settledYet(waiting)).toBe(pending)
    await watcher.close()
    expect(await within("the loop to end", 10_000, loop)).toBe("ended")
    expect(await within("the wait to end", 10_000, waiting)).toBe("rejected")
    await held.unlock()
  }, 30_000)

  test("on the sharded service: one watch over keys of different shards, each event naming its shard", async () => {
    const kv = await open("sharded")
    const keys = Array.from({ length: 40 }, (_, i) => `sw/${i}`)
    const a = keys[0]!
    const b = keys.find((k) => shardOf(k, 10) !== shardOf(a, 10))!
    // Revisions count per shard; these keys are new, so from revision 1 every event is one of these.
    const seen = take(kv.watch({ prefix: "sw/" }, { fromRevision: 1 }), 2)
    await kv.put(a, "A")
    await kv.put(b, "B")
    const events = await within("the sharded watch", 20_000, seen)
    expect(events.map((e) => [e.key, e.value, e.shard]).sort()).toEqual(
      [
        [a, "A", shardOf(a, 10)],
        [b, "B", shardOf(b, 10)],
      ].sort(),
    )
  }, 60_000)
})

describe("leases through the clerk", () => {
  test("a key on a lease goes when the lease is revoked; timeToLive and leases() show it until then", async () => {
    const kv = await open()
    const { lease, ttlMs } = await kv.grant(60_000)
    expect(ttlMs).toBe(60_000)
    await kv.put("lease/a", "1", { lease })
    expect(await kv.put("lease/b", "2", { ifAbsent: true, lease })).toMatchObject({ applied: true })
    const status = await kv.timeToLive(lease)
    expect(status).toMatchObject({ lease, ttlMs: 60_000, keys: ["lease/a", "lease/b"] })
    expect(status!.remainingMs).toBeGreaterThan(50_000)
    expect((await kv.leases()).map((l) => l.lease)).toContain(lease)
    expect((await kv.keepAlive(lease)).lease).toBe(lease)
    await kv.revoke(lease)
    expect(await kv.getEntry("lease/a")).toBeUndefined()
    expect(await kv.getEntry("lease/b")).toBeUndefined()
    expect(await kv.timeToLive(lease)).toBeUndefined()
    const refused = await kv.keepAlive(lease).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(LeaseNotFound)
    expect(await kv.put("lease/c", "1", { lease }).catch((e: unknown) => e)).toBeInstanceOf(LeaseNotFound)
    expect(await kv.getEntry("lease/c")).toBeUndefined()
  }, 60_000)

  test("a lease nobody renews ends after its TTL, never before; one the clerk keeps alive outlives it", async () => {
    const kv = await open()
    const sent = performance.now()
    const { lease } = await kv.grant(1_000)
    await kv.put("ttl/dropped", "x", { lease })
    const kept = await kv.lease(1_000)
    await kv.put("ttl/kept", "y", { lease: kept.id })
    await pollUntil("the unrenewed lease's key to go", async () => (await kv.getEntry("ttl/dropped")) === undefined, {
      timeoutMs: 15_000,
      intervalMs: 50,
    })
    expect(performance.now() - sent).toBeGreaterThanOrEqual(1_000)
    // Three TTLs later the kept lease's key is still there.
    await Bun.sleep(3_000)
    expect(await kv.get("ttl/kept")).toBe("y")
    expect(await settledYet(kept.lost)).toBe(pending)
    await kept.revoke()
    expect(await kv.getEntry("ttl/kept")).toBeUndefined()
  }, 60_000)

  test("a kept lease revoked by someone else is reported lost", async () => {
    const kv = await open()
    const other = await open()
    const kept = await kv.lease(1_500)
    await other.revoke(kept.id)
    const lost: LeaseLost = await within("the loss to be reported", 10_000, kept.lost)
    expect(lost).toMatchObject({ _tag: "LeaseLost", lease: kept.id, reason: "ended" })
    expect(lost.message).toContain(String(kept.id))
    await kept.revoke() // already gone: nothing to do
  }, 30_000)
})

describe("locks and elections through the clerk", () => {
  test("one holder at a time; the next holder's token is larger; a waiter with a timeout gives up with LockTimeout", async () => {
    const [a, b, c] = await Promise.all([open(), open(), open()])
    const first = await a.lock("job", { ttlMs: 5_000 })
    expect(first.key).toBe("locks/job")
    expect((await a.leader("job"))?.token).toBe(first.token)
    const second = b.lock("job", { ttlMs: 5_000 })
    const timedOut = await c.lock("job", { timeoutMs: 500 }).catch((e: unknown) => e)
    expect(timedOut).toBeInstanceOf(LockTimeout)
    expect(await settledYet(second)).toBe(pending)
    await first.unlock()
    const next = await within("the second holder", 20_000, second)
    expect(next.token).toBeGreaterThan(first.token)
    await first.unlock() // no longer held: does nothing to the new holder's lock
    expect((await c.leader("job"))?.token).toBe(next.token)
    await next.unlock()
    expect(await c.leader("job")).toBeUndefined()
    // The lease taken for the lock went with it.
    expect(await c.timeToLive(next.lease)).toBeUndefined()
  }, 60_000)

  test("a holder whose lease is revoked learns it lost the lock, and the next holder gets a larger token", async () => {
    const [a, b] = await Promise.all([open(), open()])
    const held = await a.lock("fenced", { ttlMs: 3_000 })
    await b.revoke(held.lease)
    const lost = await within("the holder to learn of it", 10_000, held.lost)
    expect(lost.reason).toBe("ended")
    const next = await within("the next holder", 20_000, b.lock("fenced"))
    expect(next.token).toBeGreaterThan(held.token)
    await next.unlock()
  }, 60_000)

  test("an election: one leader, who proclaims; another campaigner leads once it resigns", async () => {
    const [a, b] = await Promise.all([open(), open()])
    const one = await a.campaign("primary", "node-1")
    expect(await a.leader("primary")).toEqual({ value: "node-1", token: one.token })
    expect(await one.proclaim("node-1:v2")).toBe(true)
    expect((await b.leader("primary"))?.value).toBe("node-1:v2")
    const two = b.campaign("primary", "node-2")
    expect(await settledYet(two)).toBe(pending)
    await one.resign()
    const leader = await within("the second leader", 20_000, two)
    expect(await b.leader("primary")).toEqual({ value: "node-2", token: leader.token })
    expect(await one.proclaim("node-1:v3")).toBe(false)
    await leader.resign()
  }, 60_000)

  test("the Effect API: a lock and a lease held for a scope, released when it closes", async () => {
    const program = Effect.gen(function* () {
      const kv = yield* Kv
      const inside = yield* Effect.scoped(
        Effect.gen(function* () {
          const lock = yield* kv.lock("fx-lock")
          const lease = yield* kv.lease(5_000)
          yield* kv.put("fx/leased", "v", { lease: lease.id })
          const holder = yield* kv.leader("fx-lock")
          return { token: lock.token, holder, lease: lease.id }
        }),
      )
      const after = yield* kv.leader("fx-lock")
      const leased = yield* kv.getEntry("fx/leased")
      const leaseAfter = yield* kv.timeToLive(inside.lease)
      const base = yield* kv.put("fx/w-base", "0", { ifAbsent: true })
      const watching = yield* Effect.forkChild(
        Stream.runCollect(Stream.take(kv.watch("fx/w", { fromRevision: base.revision + 1 }), 1)),
      )
      yield* kv.put("fx/w", "1")
      const events = yield* Fiber.join(watching)
      return { inside, after, leased, leaseAfter, events }
    }).pipe(Effect.provide(Kv.layer({ config: cluster.config, service: "kvraft", deadlineMs: 30_000 })))
    const { inside, after, leased, leaseAfter, events } = await Effect.runPromise(program)
    expect(inside.holder?.token).toBe(inside.token)
    expect(after).toBeUndefined()
    expect(leased).toBeUndefined()
    expect(leaseAfter).toBeUndefined()
    expect(events.map((e) => [e.key, e.value])).toEqual([["fx/w", "1"]])
  }, 60_000)

  test("on the sharded service leases, locks and elections are refused with KvraftOnly", async () => {
    const kv = await open("sharded")
    const refusals = await Promise.all([
      kv.grant(5_000).catch((e: unknown) => e),
      kv.put("k", "v", { lease: 1 }).catch((e: unknown) => e),
      kv.lease(5_000).catch((e: unknown) => e),
      kv.lock("x").catch((e: unknown) => e),
      kv.campaign("x", "me").catch((e: unknown) => e),
      kv.leader("x").catch((e: unknown) => e),
      kv.leases().catch((e: unknown) => e),
    ])
    for (const refused of refusals) {
      expect(refused).toBeInstanceOf(KvraftOnly)
      expect((refused as KvraftOnly).message).toContain('service: "kvraft"')
    }
    expect(await kv.getEntry("k")).toBeUndefined()
  }, 30_000)
})

// Last: it freezes the kvraft group for a moment.
describe("a lease the clerk cannot renew", () => {
  test("is reported lost (unrenewed) within its TTL of the last renewal sent, while the group is frozen", async () => {
    const kv = await open()
    const kept = await kv.lease(1_500)
    const frozenAt = performance.now()
    cluster.processes.signal("kvraft", "SIGSTOP")
    try {
      const lost = await within("the loss to be reported", 10_000, kept.lost)
      expect(lost.reason).toBe("unrenewed")
      // The last renewal that got through was sent before the freeze: its TTL ends by frozenAt + 1.5 s.
      expect(performance.now() - frozenAt).toBeLessThan(1_500 + 1_000)
    } finally {
      cluster.processes.signal("kvraft", "SIGCONT")
    }
    await kept.revoke()
  }, 30_000)
})
