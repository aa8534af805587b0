/**
 * Proves that a watch asking for events the group no longer keeps ends with a typed `Compacted`
 * (Stream error, and thrown by the async iterator) instead of skipping them, that a watch from
 * the compact revision on gets every later event, and that a watch without `fromRevision` starts
 * at the leader's current revision.
 */
import { describe, expect, test } from "bun:test"
import type { NodeId } from "@kv/raft"
import { seedFromEnv } from "@kv/sim"
import { SimWorld } from "@kv/testkit"
import { Chunk, Effect, Exit, Fiber, Stream } from "effect"
import { type KvClientShape, makeKvClient, makeKvServer } from "../src/index.ts"

const FILE = "packages/kvraft/test/watch.compacted.test.ts"
const peers: Record<number, string> = { 1: "kv-1", 2: "kv-2", 3: "kv-3" }

const inWorld = <A>(seed: number, body: (kv: KvClientShape) => Effect.Effect<A, unknown>) => {
  const world = new SimWorld(seed)
  world.network.setMaxDelay(5)
  const exit = world.run(
    Effect.scoped(
      Effect.gen(function* () {
        for (const [id, address] of Object.entries(peers)) {
          yield* world.start(
            address,
            makeKvServer({
              id: Number(id) as NodeId,
              peers,
              seed: seed + Number(id),
              tickMs: 10,
              limits: { watchHistoryEvents: 5 },
            }),
          )
        }
        const kv = yield* makeKvClient(yield* world.client("client"), { servers: Object.values(peers) })
        return yield* body(kv)
      }),
    ),
    120_000,
  )
  if (Exit.isFailure(exit)) throw new Error(`run failed: ${String(exit.cause)}`)
  return exit.value
}

describe("a watch beyond the kept history", () => {
  test("ends with Compacted, and a watch from the compact revision on gets every later event", () => {
    const seed = seedFromEnv().value
    console.log(`watch compacted seed ${seed} (replay: KV_SEED=${seed} bun test ${FILE})`)
    const outcome = inWorld(seed, (kv) =>
      Effect.gen(function* () {
        for (let i = 1; i <= 20; i++) yield* kv.put(`k${i % 2}`, `v${i}`)
        const tooOld = yield* Effect.exit(Stream.runCollect(kv.watch({ prefix: "k" }, { fromRevision: 1 })))
        const kept = yield* Stream.runCollect(
          kv.watch({ prefix: "k" }, { fromRevision: 16, waitMs: 200 }).pipe(Stream.take(5)),
        )
        return { tooOld, kept: Chunk.toReadonlyArray(Chunk.fromIterable(kept)).map((e) => e.modRevision) }
      }),
    )
    expect(Exit.isFailure(outcome.tooOld)).toBe(true)
    if (Exit.isFailure(outcome.tooOld)) {
      const error = outcome.tooOld.cause.toString()
      expect(error).toContain("Compacted")
      expect(error).toContain("up to 15")
    }
    expect(outcome.kept).toEqual([16, 17, 18, 19, 20])
  })

  test("a watch without fromRevision starts after the leader's current revision", () => {
    const seed = seedFromEnv().value + 1
    const kept = inWorld(seed, (kv) =>
      Effect.gen(function* () {
        for (let i = 1; i <= 20; i++) yield* kv.put("k", `v${i}`)
        const watching = yield* Effect.forkChild(Stream.runCollect(kv.watch("k", { waitMs: 200 }).pipe(Stream.take(2))))
        // The watch has found where it starts before the writes below.
        yield* Effect.sleep(500)
        yield* kv.put("k", "after1")
        yield* kv.put("k", "after2")
        return yield* Fiber.join(watching)
      }),
    )
    expect(Chunk.toReadonlyArray(Chunk.fromIterable(kept)).map((e) => [e.value, e.modRevision])).toEqual([
      ["after1", 21],
      ["after2", 22],
    ])
  })
})
