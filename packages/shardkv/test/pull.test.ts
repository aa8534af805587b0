/** Pulling a shard in chunks: resumes at its offset after loss, across replicas of the old owner. */
import { describe, expect, test } from "bun:test"
import { type RpcNodeShape, SeededRandom, seedFromEnv } from "@kv/rpc"
import { SimProcesses, SimWorld } from "@kv/testkit"
import { Effect } from "effect"
import { PULL_CHUNK_BYTES, type PullReply, type PullRequest, ShardPullMethod } from "../src/protocol.ts"
import { pullShard, ShardPullBuffer } from "../src/server/index.ts"
import type { MigrationTask } from "../src/stateMachine/index.ts"

const FILE = "packages/shardkv/test/pull.test.ts"

describe("ShardPullBuffer", () => {
  test("assembles consecutive chunks into the whole shard", () => {
    const buffer = new ShardPullBuffer(3, 1)
    expect(buffer.accept(0, 5, new Uint8Array([1, 2]))).toBe(true)
    expect(buffer.offset).toBe(2)
    expect(buffer.complete()).toBe(false)
    expect(() => buffer.bytes()).toThrow(/incomplete/)
    expect(buffer.accept(2, 5, new Uint8Array([3, 4, 5]))).toBe(true)
    expect(buffer.complete()).toBe(true)
    expect(buffer.bytes()).toEqual(new Uint8Array([1, 2, 3, 4, 5]))
  })

  test("an empty shard is complete at once", () => {
    const buffer = new ShardPullBuffer(3, 1)
    expect(buffer.accept(0, 0, new Uint8Array())).toBe(true)
    expect(buffer.bytes()).toEqual(new Uint8Array())
  })

  test("a reply that does not fit starts over", () => {
    const fits = () => {
      const b = new ShardPullBuffer(3, 1)
      b.accept(0, 5, new Uint8Array([1, 2]))
      return b
    }
    const cases: [number, number, number[]][] = [
      [0, 5, [1, 2]], // stale offset (a duplicate reply)
      [2, 6, [3]], // another total
      [2, 5, [3, 4, 5, 6]], // past the end
      [2, 5, []], // empty short of the end
    ]
    for (const [offset, total, chunk] of cases) {
      const b = fits()
      expect(b.accept(offset, total, new Uint8Array(chunk))).toBe(false)
      expect(b.offset).toBe(0)
      expect(b.total).toBeUndefined()
    }
  })

  test("keeps its own copy of each chunk", () => {
    const buffer = new ShardPullBuffer(3, 1)
    const chunk = new Uint8Array([7, 7])
    buffer.accept(0, 2, chunk)
    chunk.fill(0)
    expect(buffer.bytes()).toEqual(new Uint8Array([7, 7]))
  })
})

/** A replica of the old owner: serves `shard` of `data` as frozen at `configNum`, or refuses. */
const serve = (
  node: RpcNodeShape,
  behaviour: (request: PullRequest) => "data" | "NotReady" | "silent",
  data: Uint8Array,
  seen: PullRequest[],
) =>
  node.handle(ShardPullMethod, (request): Effect.Effect<PullReply> => {
    seen.push(request)
    const mode = behaviour(request)
    if (mode === "silent") return Effect.never
    if (mode === "NotReady") return Effect.succeed({ ok: false, error: "NotReady" })
    const chunk = data.subarray(request.offset, request.offset + PULL_CHUNK_BYTES)
    return Effect.succeed({ ok: true, total: data.length, checksum: 12_345, chunk })
  })

describe("pullShard over a lossy network", () => {
  test("resumes at its offset on another replica after the first one stops answering", async () => {
    const seed = seedFromEnv()
    console.log(`pull seed ${seed} (replay: KV_SEED=${seed} bun test ${FILE})`)
    const random = new SeededRandom(seed)
    const world = new SimWorld(seed)
    // Each 256 KiB chunk is 5 datagrams each way, so even this loss makes many attempts fail.
    world.network.setDropRate(0.05)
    world.network.setMaxDelay(5)
    const processes = new SimProcesses(world)
    await world.drive(async () => {
      try {
        const data = new Uint8Array(3 * PULL_CHUNK_BYTES + 12_345)
        for (let i = 0; i < data.length; i++) data[i] = random.int(256)
        const seen: PullRequest[][] = [[], [], []]
        // Replica 0 has not reached the configuration; replica 1 serves the first two chunks, then
        // goes silent (crashed); replica 2 serves everything.
        const stallAt = 2 * PULL_CHUNK_BYTES
        serve(await processes.client("old-0"), () => "NotReady", data, seen[0]!)
        serve(await processes.client("old-1"), (r) => (r.offset < stallAt ? "data" : "silent"), data, seen[1]!)
        const replica2 = await processes.client("old-2")
        const puller = await processes.client("puller")
        const task: MigrationTask = {
          shard: 4,
          configNum: 7,
          fromGid: 100,
          servers: ["old-0", "old-1", "old-2"],
          handOffConfigNum: 7,
        }
        const buffer = new ShardPullBuffer(task.configNum, task.shard)

        // Replica 2 is not up yet: the first passes get what replica 1 gives before it goes silent.
        let passes = 0
        while (buffer.offset < stallAt && passes++ < 40) {
          await world.promise(pullShard(puller, task, buffer, { callDeadlineMs: 300, attemptTimeoutMs: 50 }))
        }
        expect(buffer.offset).toBe(stallAt)
        expect(buffer.complete()).toBe(false)

        serve(replica2, () => "data", data, seen[2]!)
        for (passes = 0; !buffer.complete() && passes < 40; passes++) {
          await world.promise(pullShard(puller, task, buffer, { callDeadlineMs: 300, attemptTimeoutMs: 50 }))
        }
        expect(buffer.complete()).toBe(true)
        expect(buffer.bytes()).toEqual(data)
        // Replica 2 was first asked for where replica 1 left off, not for the start.
        expect(seen[2]![0]!.offset).toBe(stallAt)
        expect(seen[0]!.length).toBeGreaterThan(0)
        for (const requests of seen) for (const r of requests) expect([r.configNum, r.shard]).toEqual([7, 4])
      } finally {
        await processes.cleanup()
      }
    })
    console.log(`${(world.now() / 1000).toFixed(1)} s of virtual time`)
  }, 60_000)
})
