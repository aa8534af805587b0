/**
 * Proves that versions, conditional writes, transactions and listings work through a real kvraft
 * group in the seeded world, and that a retried conditional write gets its first answer back after
 * the leader that applied it is gone and the key has changed since.
 */
import { describe, expect, test } from "bun:test"
import type { NodeId } from "@kv/raft"
import type { RpcNodeShape } from "@kv/rpc"
import { seedFromEnv } from "@kv/sim"
import { SimWorld } from "@kv/testkit"
import { Effect, Exit } from "effect"
import { type CommandRequest, KvCommandMethod, KvStatusMethod, makeKvClient, makeKvServer } from "../src/index.ts"

const FILE = "packages/kvraft/test/coord.world.test.ts"
const peers: Record<number, string> = { 1: "kv-1", 2: "kv-2", 3: "kv-3" }
const addresses = Object.values(peers)

const startGroup = (world: SimWorld, seed: number, maxRaftStateBytes?: number) =>
  Effect.gen(function* () {
    for (const [id, address] of Object.entries(peers)) {
      yield* world.start(
        address,
        makeKvServer({ id: Number(id) as NodeId, peers, seed: seed + Number(id), tickMs: 10, maxRaftStateBytes }),
      )
    }
  })

/** Sends one command, exactly as given (same client id and seq), to whichever running replica leads. */
const sendRaw = (world: SimWorld, rpc: RpcNodeShape, request: CommandRequest) =>
  Effect.gen(function* () {
    for (let round = 0; round < 200; round++) {
      for (const address of addresses) {
        if (!world.isRunning(address)) continue
        const reply = yield* rpc
          .call(address, KvCommandMethod, request, { attemptTimeoutMs: 100, deadlineMs: 500 })
          .pipe(Effect.option)
        if (reply._tag === "Some" && (reply.value.ok || reply.value.error !== "WrongLeader")) return reply.value
      }
      yield* Effect.sleep(50)
    }
    return yield* Effect.die(new Error("no replica answered"))
  })

const leaderOf = (world: SimWorld, rpc: RpcNodeShape) =>
  Effect.gen(function* () {
    for (let round = 0; round < 200; round++) {
      for (const address of addresses) {
        if (!world.isRunning(address)) continue
        const status = yield* rpc
          .call(address, KvStatusMethod, {}, { attemptTimeoutMs: 100, deadlineMs: 300 })
          .pipe(Effect.option)
        if (status._tag === "Some" && status.value.role === "leader") return address
      }
      yield* Effect.sleep(50)
    }
    return yield* Effect.die(new Error("no leader"))
  })

const runWorld = <A>(seed: number, program: (world: SimWorld) => Effect.Effect<A, unknown, never>) => {
  const world = new SimWorld(seed)
  world.network.setMaxDelay(5)
  const exit = world.run(
    Effect.suspend(() => program(world)),
    600_000,
  )
  if (Exit.isFailure(exit)) throw new Error(`run failed: ${String(exit.cause)}`)
  return exit.value
}

describe("coordination primitives on kvraft", () => {
  test("getEntry, putIf, deleteIf, txn and list answer as the metadata says", () => {
    const seed = seedFromEnv().value
    console.log(`coord world seed ${seed} (replay: KV_SEED=${seed} bun test ${FILE})`)
    runWorld(seed, (world) =>
      Effect.scoped(
        Effect.gen(function* () {
          yield* startGroup(world, seed)
          const kv = yield* makeKvClient(yield* world.client("client"), { servers: addresses, deadlineMs: 30_000 })
          expect(yield* kv.getEntry("a")).toBeUndefined()
          const created = yield* kv.putIf("a", "1", { ifAbsent: true })
          expect(created).toEqual({ applied: true, revision: 1, entry: undefined })
          const again = yield* kv.putIf("a", "2", { ifAbsent: true })
          expect(again).toEqual({
            applied: false,
            revision: 1,
            entry: { value: "1", version: 1, modRevision: 1, createRevision: 1 },
          })
          yield* kv.put("a", "x")
          expect(yield* kv.getEntry("a")).toEqual({ value: "x", version: 2, modRevision: 2, createRevision: 1 })
          expect((yield* kv.putIf("a", "y", { ifVersion: 1 })).applied).toBe(false)
          expect((yield* kv.putIf("a", "y", { ifModRevision: 2 })).applied).toBe(true)
          expect((yield* kv.deleteIf("a", { ifValue: "x" })).applied).toBe(false)
          expect((yield* kv.deleteIf("a", { ifValue: "y" })).applied).toBe(true)
          expect(yield* kv.get("a")).toBe("")

          const txn = yield* kv.txn({
            compare: [{ key: "dir/b", target: "version", cmp: "==", value: 0 }],
            success: [
              { op: "put", key: "dir/b", value: "B" },
              { op: "put", key: "dir/a", value: "A" },
              { op: "get", key: "dir/b" },
            ],
            failure: [{ op: "get", key: "dir/b" }],
          })
          expect(txn).toEqual({
            succeeded: true,
            revision: 5,
            entries: [undefined, undefined, { value: "B", version: 1, modRevision: 5, createRevision: 5 }],
          })
          for (const key of ["dir/c", "dir0", "di", "dir/\u{1F600}", "dir/\uFFFD"]) yield* kv.put(key, key)
          const first = yield* kv.list("dir/", { limit: 2 })
          expect(first.entries.map((e) => e.key)).toEqual(["dir/a", "dir/b"])
          expect(first.next).toBe("dir/b")
          const rest = yield* kv.list("dir/", { after: first.next, keysOnly: true })
          // Byte order: U+FFFD (EF BF BD) sorts before U+1F600 (F0 9F 98 80).
          expect(rest.entries.map((e) => e.key)).toEqual(["dir/c", "dir/\uFFFD", "dir/\u{1F600}"])
          expect(rest.entries[0]).toEqual({ key: "dir/c", version: 1, modRevision: 6, createRevision: 6 })
          expect(rest.next).toBeUndefined()
        }),
      ),
    )
  })

  test("a retried CAS gets its first answer after a leader change and a snapshot, though the key changed since", () => {
    const seed = seedFromEnv().value + 1
    console.log(`coord world seed ${seed} (replay: KV_SEED=${seed - 1} bun test ${FILE})`)
    runWorld(seed, (world) =>
      Effect.scoped(
        Effect.gen(function* () {
          // Small enough that every replica snapshots many times over the writes below.
          yield* startGroup(world, seed, 2_000)
          const rpc = yield* world.client("raw")
          const cas: CommandRequest = {
            clientId: 4242,
            seq: 1,
            ackedBelow: 1,
            op: { op: "casPut", key: "lock", value: "mine", when: { target: "version", cmp: "==", value: 0 } },
          }
          const first = yield* sendRaw(world, rpc, cas)
          expect(first as unknown).toEqual({ ok: true, reply: { kind: "cas", applied: true, revision: 1 } })

          const leader = yield* leaderOf(world, rpc)
          yield* world.crash(leader)
          const kv = yield* makeKvClient(yield* world.client("other"), { servers: addresses, deadlineMs: 30_000 })
          yield* kv.delete("lock")
          for (let i = 0; i < 100; i++) yield* kv.put(`filler${i}`, "x".repeat(50))

          // Applied again, the CAS would succeed at a new revision; answered from the session, it
          // repeats the first answer.
          const retried = yield* sendRaw(world, rpc, cas)
          expect(retried).toEqual(first)
          expect(yield* kv.get("lock")).toBe("")

          // Every replica restarts from its snapshot: the CAS's log entry is long compacted away, so
          // only the session in the snapshot can answer.
          for (const address of addresses) yield* world.crash(address)
          yield* startGroup(world, seed, 2_000)
          expect(yield* sendRaw(world, rpc, cas)).toEqual(first)
        }),
      ),
    )
  })
})
