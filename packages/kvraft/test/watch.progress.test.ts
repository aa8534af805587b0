/**
 * Proves that an idle watcher learns it is current: on a store nobody writes to, a watch with
 * progress notifications gets one every wait, at the store's revision, and no event.
 */
import { expect, test } from "bun:test"
import { Effect, Stream } from "effect"
import { makeKvClient } from "../src/index.ts"
import { groupAddresses, runWorldScenario, startGroupReplica } from "./support/worldGroup.ts"

const FILE = "packages/kvraft/test/watch.progress.test.ts"

test("an idle watch gets a progress notification every wait, at the store's revision", () => {
  runWorldScenario("watch progress", FILE, (world, seed) =>
    Effect.scoped(
      Effect.gen(function* () {
        for (const address of groupAddresses) yield* startGroupReplica(world, seed, address)
        const kv = yield* makeKvClient(yield* world.client("client"), { servers: groupAddresses, deadlineMs: 30_000 })
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
  )
})
