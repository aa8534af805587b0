/**
 * Proves leases on a real kvraft group in the seeded world (virtual time): a key attached to a
 * lease lives as long as the lease is kept alive, across leader crashes and a leader whose wall
 * clock jumps two hours; once keep-alives stop it is deleted no earlier than the TTL after the last
 * keep-alive was sent, and within a bound after; a lease survives a restart of every replica and
 * still ends; revoking deletes every attached key at one revision; an ended lease is LeaseNotFound
 * for keep-alives and puts (nothing written); the sharded service refuses leases.
 *
 * Each test prints its seed; KV_SEED=<n> replays it.
 */
import { describe, expect, test } from "bun:test"
import type { SimWorld } from "@kv/testkit"
import { Effect, Fiber } from "effect"
import { type KvGroupClientShape, makeKvClient, type makeKvServer } from "../src/index.ts"
import { groupAddresses as addresses, runWorldScenario, startGroupReplica } from "./support/worldGroup.ts"

const FILE = "packages/kvraft/test/lease.world.test.ts"
const TTL_MS = 2_000
/** Expiry may trail the TTL by the lease tick, a commit and the poll below: generously bounded. */
const LATE_BOUND_MS = 1_500

const startReplica = (world: SimWorld, seed: number, address: string) =>
  startGroupReplica(world, seed, address, { leases: { checkpointMs: 1_000 } })

const leaderAddress = (world: SimWorld, servers: Map<string, { rsm: { raft: { status(): { role: string } } } }>) =>
  [...servers].find(([address, s]) => world.isRunning(address) && s.rsm.raft.status().role === "leader")?.[0]

const runWorld = (name: string, program: (world: SimWorld, seed: number) => Effect.Effect<void, unknown, never>) =>
  runWorldScenario(name, FILE, program)

/** Starts the group and a client; the servers by address, for their status. */
const setUp = (world: SimWorld, seed: number) =>
  Effect.gen(function* () {
    const servers = new Map<string, Effect.Success<ReturnType<typeof makeKvServer>>>()
    for (const address of addresses) servers.set(address, yield* startReplica(world, seed, address))
    const kv: KvGroupClientShape = yield* makeKvClient(yield* world.client("client"), {
      servers: addresses,
      deadlineMs: 30_000,
    })
    return { servers, kv }
  })

/** Polls `key` every 50 ms until it is gone; the virtual time it was first seen gone. */
const goneAt = (world: SimWorld, kv: KvGroupClientShape, key: string, within: number) =>
  Effect.gen(function* () {
    const from = world.now()
    while ((yield* kv.getEntry(key)) !== undefined) {
      if (world.now() - from > within) return yield* Effect.die(new Error(`${key} still there after ${within} ms`))
      yield* Effect.sleep(50)
    }
    return world.now()
  })

describe("leases on kvraft", () => {
  test("a kept-alive lease outlives leader crashes and a clock jump; after the last keep-alive its key goes within bounds", () => {
    runWorld("lease failover", (world, seed) =>
      Effect.scoped(
        Effect.gen(function* () {
          const { servers, kv } = yield* setUp(world, seed)
          const { lease } = yield* kv.leases.grant(TTL_MS)
          yield* kv.leases.put("lock", "me", lease)
          const keeper = yield* Effect.forkChild(kv.leases.keepAliveForever(lease, TTL_MS))
          // Crash the leader three times, and jump one leader's wall clock two hours ahead.
          let jumped = 0
          for (let round = 0; round < 3; round++) {
            yield* Effect.sleep(1_500)
            let leader = leaderAddress(world, servers)
            for (let wait = 0; leader === undefined && wait < 100; wait++) {
              yield* Effect.sleep(50)
              leader = leaderAddress(world, servers)
            }
            if (leader === undefined) return yield* Effect.die(new Error("no leader within 5 s"))
            if (round === 1) jumped++
            if (round === 1) {
              // It keeps leading a while with its wall clock two hours ahead.
              world.jumpClock(leader, 2 * 60 * 60 * 1000)
              yield* Effect.sleep(1_000)
              expect(yield* kv.getEntry("lock")).toMatchObject({ value: "me" })
            }
            yield* world.crash(leader)
            yield* Effect.sleep(800)
            servers.set(leader, yield* startReplica(world, seed, leader))
          }
          expect(jumped).toBe(1)
          for (let k = 0; k < 20; k++) {
            expect(yield* kv.getEntry("lock")).toMatchObject({ value: "me" })
            yield* Effect.sleep(150)
          }
          yield* Fiber.interrupt(keeper)
          // The last keep-alive: sent at `sentAt`; then the leader that applied it crashes.
          const sentAt = world.now()
          yield* kv.leases.keepAlive(lease)
          const status = yield* kv.leases.timeToLive(lease)
          expect(status?.remainingMs).toBeLessThanOrEqual(TTL_MS)
          expect(status?.remainingMs).toBeGreaterThan(TTL_MS - 500)
          expect(status?.keys).toEqual(["lock"])
          const leader = leaderAddress(world, servers)
          if (leader !== undefined) yield* world.crash(leader)
          const gone = yield* goneAt(world, kv, "lock", TTL_MS + 10_000)
          expect(gone).toBeGreaterThanOrEqual(sentAt + TTL_MS)
          // A leader change adds an election and the new leader's wait; still bounded.
          expect(gone).toBeLessThanOrEqual(sentAt + TTL_MS + LATE_BOUND_MS + 2_000)
          expect(yield* kv.leases.timeToLive(lease)).toBeUndefined()
          const ended = yield* Effect.flip(kv.leases.keepAlive(lease))
          expect(ended._tag).toBe("LeaseNotFound")
        }),
      ),
    )
  }, 60_000)

  test("without a leader change, the key goes between the TTL and the TTL plus the bound", () => {
    runWorld("lease expiry", (world, seed) =>
      Effect.scoped(
        Effect.gen(function* () {
          const { kv } = yield* setUp(world, seed)
          const sentAt = world.now()
          const { lease } = yield* kv.leases.grant(TTL_MS)
          yield* kv.leases.put("a", "1", lease)
          const gone = yield* goneAt(world, kv, "a", TTL_MS + 10_000)
          expect(gone).toBeGreaterThanOrEqual(sentAt + TTL_MS)
          expect(gone).toBeLessThanOrEqual(sentAt + TTL_MS + LATE_BOUND_MS)
        }),
      ),
    )
  }, 60_000)

  test("a checkpoint proposed while keep-alives are in flight does not undo them: no key goes before its TTL", () => {
    runWorld("lease checkpoint race", (world, seed) =>
      Effect.scoped(
        Effect.gen(function* () {
          // Checkpoints every 100 ms, keep-alives 7 ms apart: many land between a checkpoint's
          // proposal and its commit.
          for (const address of addresses) {
            yield* startGroupReplica(world, seed, address, { leases: { checkpointMs: 100 } })
          }
          const kv: KvGroupClientShape = yield* makeKvClient(yield* world.client("client"), {
            servers: addresses,
            deadlineMs: 30_000,
          })
          const count = 30
          const leases: number[] = []
          for (let i = 0; i < count; i++) {
            const { lease } = yield* kv.leases.grant(TTL_MS)
            yield* kv.leases.put(`k${i}`, "v", lease)
            leases.push(lease)
          }
          yield* Effect.sleep(1_000)
          const sent: number[] = []
          for (let i = 0; i < count; i++) {
            sent.push(world.now())
            yield* Effect.forkChild(kv.leases.keepAlive(leases[i]!))
            yield* Effect.sleep(7)
          }
          const gone = new Map<number, number>()
          while (gone.size < count && world.now() < sent[0]! + 20_000) {
            for (let i = 0; i < count; i++) {
              if (!gone.has(i) && (yield* kv.getEntry(`k${i}`)) === undefined) gone.set(i, world.now())
            }
            yield* Effect.sleep(10)
          }
          expect(gone.size).toBe(count)
          const early = [...gone]
            .filter(([i, at]) => at < sent[i]! + TTL_MS)
            .map(([i, at]) => `k${i}: ${sent[i]! + TTL_MS - at} ms early`)
          expect(early).toEqual([])
        }),
      ),
    )
  }, 60_000)

  test("a lease survives a restart of every replica, and still ends", () => {
    runWorld("lease restart", (world, seed) =>
      Effect.scoped(
        Effect.gen(function* () {
          const { kv } = yield* setUp(world, seed)
          const { lease } = yield* kv.leases.grant(5_000)
          yield* kv.leases.put("k", "v", lease)
          for (const address of addresses) yield* world.crash(address)
          yield* Effect.sleep(1_000)
          for (const address of addresses) yield* startReplica(world, seed, address)
          expect(yield* kv.getEntry("k")).toMatchObject({ value: "v" })
          expect((yield* kv.leases.list()).map((l) => l.lease)).toEqual([lease])
          // Replayed at restart: it may last longer than 5 s from the grant, never forever.
          yield* goneAt(world, kv, "k", 5_000 + 2 * LATE_BOUND_MS)
        }),
      ),
    )
  }, 60_000)

  test("revoke deletes every attached key at one revision; an ended lease writes nothing", () => {
    runWorld("lease revoke", (world, seed) =>
      Effect.scoped(
        Effect.gen(function* () {
          const { kv } = yield* setUp(world, seed)
          const { lease } = yield* kv.leases.grant(60_000)
          const other = yield* kv.leases.grant(60_000)
          yield* kv.leases.put("x/1", "a", lease)
          yield* kv.leases.put("x/2", "b", lease)
          yield* kv.leases.put("x/3", "c", other.lease)
          yield* kv.put("x/4", "d")
          // A put without a lease detaches the key: it stays when the lease ends.
          yield* kv.leases.put("x/5", "e", lease)
          yield* kv.put("x/5", "e2")
          const before = (yield* kv.list("x/")).entries.length
          expect(before).toBe(5)
          yield* kv.leases.revoke(lease)
          const page = yield* kv.list("x/")
          expect(page.entries.map((e) => e.key)).toEqual(["x/3", "x/4", "x/5"])
          // Both deletes share one revision: one more than the last write's.
          const last = (yield* kv.getEntry("x/5"))!.modRevision
          yield* kv.put("probe", "p")
          expect((yield* kv.getEntry("probe"))!.modRevision).toBe(last + 2)
          expect((yield* Effect.flip(kv.leases.put("x/6", "f", lease)))._tag).toBe("LeaseNotFound")
          expect(yield* kv.getEntry("x/6")).toBeUndefined()
          expect((yield* Effect.flip(kv.leases.revoke(lease)))._tag).toBe("LeaseNotFound")
          expect((yield* Effect.flip(kv.leases.grant(10)))._tag).toBe("InvalidRequest")
        }),
      ),
    )
  }, 60_000)
})
