/**
 * The sharded swarm (see swarm/shardedSeed.ts for what one seed builds, the faults it chooses and
 * what it checks): 300 seeds per run, and one seed run twice must be the same run.
 *
 * KV_SEED=<n> runs that one seed; KV_SWARM_SEEDS=<count> sets how many seeds a run covers;
 * KV_SWARM_TRACE=1 prints a seed's faults and configurations as they happen.
 */
import { describe, expect, test } from "bun:test"
import { runSwarmSeeds } from "@kv/testkit"
import { runShardedSeed } from "./swarm/shardedSeed.ts"

const FILE = "packages/shardkv/test/swarm.test.ts"

describe("sharded swarm in the seeded world", () => {
  test("every seed: one group per shard, linearizable, nothing lost or doubled, live after healing", () => {
    const faults: Record<string, number> = {}
    runSwarmSeeds("sharded swarm", FILE, 300, (seed) => {
      const result = runShardedSeed(seed)
      for (const [fault, n] of Object.entries(result.faults)) faults[fault] = (faults[fault] ?? 0) + n
      return result
    })
    console.log(`sharded swarm faults: ${JSON.stringify(faults)}`)
  }, 600_000)

  test("one seed twice gives the same run (history, virtual end time, traffic)", () => {
    const first = runShardedSeed(4242)
    const second = runShardedSeed(4242)
    expect(first.ok).toBe(true)
    expect(second.digest).toBe(first.digest)
    expect(second).toEqual(first)
  }, 60_000)
})
