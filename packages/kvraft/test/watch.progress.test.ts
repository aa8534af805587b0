/**
 * Proves that an idle watcher learns it is current: on a store nobody writes to, a watch with
 * progress notifications gets one every wait, at the store's revision, and no event.
 */
import { expect, test } from "bun:test"
import type { NodeId } from "@kv/raft"
import { seedFromEnv } from "@kv/sim"
import { SimWorld } from "@kv/testkit"
import { Effect, Exit, Stream } from "effect"
import { makeKvClient, makeKvServer } from "../src/index.ts"

const FILE = "packages/kvraft/test/watch.progress.test.ts"
const peers: Record<number, string> = { 1: "kv-1", 2: "kv-2", 3: "kv-3" }

test("an idle watch gets a progress notification every wait, at the store's revision", () => {
  const seed = seedFromEnv().value
  console.log(`watch progress: seed ${seed} (replay: KV_SEED=${seed} bun test ${FILE})`)
  const world = new SimWorld(seed)
  world.network.setMaxDelay(5)
  const exit = world.run(
    Effect.scoped(
      Effect.gen(function* () {
        for (const [id, address] of Object.entries(peers)) {
          yield* world.start(
            address,
            makeKvServer({ id: Number(id) as NodeId, peers, seed: seed + Number(id), tickMs: 10 }),
          )
        }
        const kv = yield* makeKvClient(yield* world.client("client"), {
          servers: Object.values(peers),
          deadlineMs: 30_000,
        })
        yield* kv.put("elsewhere", "x")
        const revision = (yield* kv.getEntry("elsewhere"))!.modRevision
        const started = world.now()
        const items = yield* kv
          .watch({ prefix: "quiet/" }, { waitMs: 500, progress: true })
          .pipe(Stream.take(4), Stream.runCollect)
        const elapsed = world.now() - started
        const all = [...items]
        expect(all.every((item) => item.type === "progress")).toBe(true)
        expect(all.map((item) => (item.type === "progress" ? item.revision : -1))).toEqual([
          revision,
          revision,
          revision,
          revision,
        ])
        // One per wait, not a flood: four take about four waits.
        expect(elapsed).toBeGreaterThanOrEqual(1_000)
      }),
    ),
    120_000,
  )
  if (Exit.isFailure(exit)) throw new Error(`seed ${seed}: ${String(exit.cause)}`)
})
