/**
 * Proves locks and elections on a kvraft group in the seeded world: clients contending for one
 * lock across leader crashes never hold it together and get tokens that only grow; a holder whose
 * lease ran out (it stopped renewing) loses the lock to the next client, and a resource that checks
 * tokens refuses the stale holder's late write; a lock that cannot be taken in time fails with
 * LockTimeout; an election names its leader, a proclaimed value, and the next leader after a
 * resignation.
 *
 * Each test prints its seed; KV_SEED=<n> replays it.
 */
import { describe, expect, test } from "bun:test"
import type { SimWorld } from "@kv/testkit"
import { Effect, Fiber } from "effect"
import { campaign, holder, type KvGroupClientShape, lock, makeKvClient, proclaim } from "../src/index.ts"
import {
  groupAddresses as addresses,
  runWorldScenario,
  startGroupReplica as startReplica,
} from "./support/worldGroup.ts"

const FILE = "packages/kvraft/test/lock.world.test.ts"

const runWorld = (name: string, program: (world: SimWorld, seed: number) => Effect.Effect<void, unknown, never>) =>
  runWorldScenario(name, FILE, program)

const client = (world: SimWorld, name: string) =>
  Effect.flatMap(world.client(name), (rpc) => makeKvClient(rpc, { servers: addresses, deadlineMs: 30_000 }))

/** A resource a lock guards, as docs/client.md tells one to be: it refuses tokens below the largest seen. */
class FencedResource {
  largest = 0
  readonly writes: string[] = []
  write(token: number, what: string): boolean {
    if (token < this.largest) return false
    this.largest = token
    this.writes.push(what)
    return true
  }
}

describe("locks and elections on kvraft", () => {
  test("contending clients hold the lock one at a time, with growing tokens, across replica crashes", () => {
    runWorld("lock contention", (world, seed) =>
      Effect.scoped(
        Effect.gen(function* () {
          for (const address of addresses) yield* startReplica(world, seed, address)
          const random = world.stream("scenario")
          const resource = new FencedResource()
          let holding = 0
          let overlaps = 0
          let acquisitions = 0
          const tokens: number[] = []
          const worker = (kv: KvGroupClientShape, id: number) =>
            Effect.gen(function* () {
              for (let round = 0; round < 6; round++) {
                yield* Effect.scoped(
                  Effect.gen(function* () {
                    const held = yield* lock(kv, "job", { ttlMs: 3_000 })
                    holding++
                    if (holding > 1) overlaps++
                    acquisitions++
                    tokens.push(held.token)
                    expect(resource.write(held.token, `${id}.${round}`)).toBe(true)
                    yield* Effect.sleep(50 + random.nextInt(200))
                    holding--
                    yield* held.unlock
                  }),
                )
              }
            })
          const kvs = yield* Effect.forEach([1, 2, 3], (n) => client(world, `c${n}`))
          const workers = yield* Effect.forEach(kvs, (kv, i) => Effect.forkChild(worker(kv, i + 1)))
          // Crash each replica in turn (the leader among them) while the workers run.
          for (const victim of addresses) {
            yield* Effect.sleep(500)
            yield* world.crash(victim)
            yield* Effect.sleep(500)
            yield* startReplica(world, seed, victim)
          }
          yield* Effect.forEach(workers, Fiber.join)
          expect(overlaps).toBe(0)
          expect(acquisitions).toBe(18)
          expect(tokens).toEqual([...tokens].sort((a, b) => a - b))
          expect(new Set(tokens).size).toBe(tokens.length)
          expect(resource.writes.length).toBe(18)
          expect(yield* holder(kvs[0]!, "job")).toBeUndefined()
        }),
      ),
    )
  }, 60_000)

  test("a holder whose lease ran out is fenced: the next holder's token is larger and its late write is refused", () => {
    runWorld("lock fencing", (world, seed) =>
      Effect.scoped(
        Effect.gen(function* () {
          for (const address of addresses) yield* startReplica(world, seed, address)
          const [a, b] = yield* Effect.forEach([1, 2], (n) => client(world, `c${n}`))
          const resource = new FencedResource()
          // A's lease is its own, never renewed: as if A stalled in a long pause while holding the lock.
          const { lease } = yield* a!.leases.grant(2_000)
          const first = yield* lock(a!, "job", { lease })
          expect(resource.write(first.token, "a1")).toBe(true)
          const started = world.now()
          const second = yield* lock(b!, "job", { ttlMs: 5_000 })
          expect(world.now() - started).toBeGreaterThanOrEqual(1_500)
          expect(second.token).toBeGreaterThan(first.token)
          expect(resource.write(second.token, "b1")).toBe(true)
          // A wakes up and writes with its old token: refused.
          expect(resource.write(first.token, "a2")).toBe(false)
          expect(resource.writes).toEqual(["a1", "b1"])
          // A's unlock does not release B's lock.
          yield* first.unlock
          expect((yield* holder(a!, "job"))?.token).toBe(second.token)
          const timedOut = yield* Effect.flip(Effect.scoped(lock(a!, "job", { timeoutMs: 1_000 })))
          expect(timedOut._tag).toBe("LockTimeout")
        }),
      ),
    )
  }, 60_000)

  test("an election names its leader and value; after a resignation the next candidate leads", () => {
    runWorld("election", (world, seed) =>
      Effect.scoped(
        Effect.gen(function* () {
          for (const address of addresses) yield* startReplica(world, seed, address)
          const [a, b] = yield* Effect.forEach([1, 2], (n) => client(world, `c${n}`))
          const leaderA = yield* campaign(a!, "primary", "host-a")
          expect(yield* holder(b!, "primary")).toEqual({ value: "host-a", token: leaderA.token })
          const waiting = yield* Effect.forkChild(campaign(b!, "primary", "host-b"))
          yield* Effect.sleep(500)
          expect(yield* proclaim(a!, leaderA, "host-a:v2")).toBe(true)
          expect((yield* holder(b!, "primary"))?.value).toBe("host-a:v2")
          yield* leaderA.unlock
          const leaderB = yield* Fiber.join(waiting)
          expect(leaderB.token).toBeGreaterThan(leaderA.token)
          expect(yield* holder(a!, "primary")).toEqual({ value: "host-b", token: leaderB.token })
          expect(yield* proclaim(a!, leaderA, "stale")).toBe(false)
        }),
      ),
    )
  }, 60_000)
})
