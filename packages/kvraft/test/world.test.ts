/**
 * Proves that a real kvraft group runs whole in the seeded world: three servers (Raft shell, RSM,
 * sessions, RPC) and a client on the world's virtual clock, network and randomness, so virtual time
 * passes in wall milliseconds and one seed gives one run.
 */
import { describe, expect, test } from "bun:test"
import type { NodeId } from "@kv/raft"
import { seedFromEnv } from "@kv/sim"
import { SimWorld } from "@kv/testkit"
import { Effect, Exit } from "effect"
import { makeKvClient, makeKvServer } from "../src/index.ts"

const FILE = "packages/kvraft/test/world.test.ts"

/** One run: a group of three, a client appending and reading; what it read and where the clock ended. */
const run = (seed: number) => {
  const world = new SimWorld(seed)
  world.network.setMaxDelay(5)
  const peers: Record<number, string> = { 1: "kv-1", 2: "kv-2", 3: "kv-3" }
  const program = Effect.gen(function* () {
    for (const [id, address] of Object.entries(peers)) {
      yield* world.start(
        address,
        makeKvServer({ id: Number(id) as NodeId, peers, seed: seed + Number(id), tickMs: 10 }),
      )
    }
    const kv = yield* makeKvClient(yield* world.client("client"), { servers: Object.values(peers), deadlineMs: 30_000 })
    for (let i = 0; i < 50; i++) yield* kv.append("k", `${i},`)
    return yield* kv.get("k")
  })
  const started = performance.now()
  const exit = world.run(program, 600_000)
  return { exit, virtualMs: world.now(), wallMs: performance.now() - started }
}

describe("kvraft in the seeded world", () => {
  test("a group of three elects, replicates and answers a client, all in virtual time", () => {
    const seed = seedFromEnv().value
    console.log(`world seed ${seed} (replay: KV_SEED=${seed} bun test ${FILE})`)
    const first = run(seed)
    if (Exit.isFailure(first.exit)) throw new Error(`run failed: ${String(first.exit.cause)}`)
    expect(first.exit.value).toBe(Array.from({ length: 50 }, (_, i) => `${i},`).join(""))
    console.log(`${first.virtualMs} ms of virtual time in ${first.wallMs.toFixed(0)} ms`)
    const again = run(seed)
    expect(again.virtualMs).toBe(first.virtualMs)
  })
})
