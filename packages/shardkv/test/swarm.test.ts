/**
 * The sharded swarm (see swarm/shardedSeed.ts for what one seed builds, the faults it chooses and
 * what it checks): 300 seeds per run, whose CAS must both apply and be rejected and whose transfer
 * transactions must both succeed and fail; 60 more with disks taking 1–12 ms per flush
 * (KV_SIM_FLUSH_MS), so inputs step Raft while a write is in flight; and one seed run twice must be
 * the same run.
 *
 * KV_SEED=<n> runs that one seed; KV_SWARM_SEEDS=<count> sets how many seeds a run covers;
 * KV_SWARM_TRACE=1 prints a seed's faults and configurations as they happen.
 */
import { describe, expect, test } from "bun:test"
import { addCoordinationCounts, type CoordinationCounts, runSwarmSeeds, withSlowFlushes } from "@kv/testkit"
import { runShardedSeed } from "./swarm/shardedSeed.ts"

const FILE = "packages/shardkv/test/swarm.test.ts"

describe("sharded swarm in the seeded world", () => {
  test("every seed: one group per shard, linearizable, nothing lost or doubled, live after healing", () => {
    const faults: Record<string, number> = {}
    let coordination: CoordinationCounts = { casApplied: 0, casRejected: 0, txnSucceeded: 0, txnFailed: 0 }
    runSwarmSeeds("sharded swarm", FILE, 300, (seed) => {
      const result = runShardedSeed(seed)
      for (const [fault, n] of Object.entries(result.faults)) faults[fault] = (faults[fault] ?? 0) + n
      coordination = addCoordinationCounts(coordination, result.coordination)
      return result
    })
    console.log(`sharded swarm faults: ${JSON.stringify(faults)}`)
    console.log(`sharded swarm coordination: ${JSON.stringify(coordination)}`)
    // Racing CAS and transfers must both win and lose, or the histories prove little about them.
    if (process.env.KV_SEED === undefined) {
      const seeds = Number(process.env.KV_SWARM_SEEDS ?? 300)
      expect(Math.min(coordination.casApplied, coordination.casRejected)).toBeGreaterThan(seeds / 2)
      expect(Math.min(coordination.txnSucceeded, coordination.txnFailed)).toBeGreaterThan(seeds / 2)
    }
  }, 600_000)

  test("every seed with disks taking 1–12 ms per flush: inputs step Raft during writes", () => {
    withSlowFlushes(12, (replayEnv) =>
      runSwarmSeeds("sharded swarm, slow flushes", FILE, 60, (seed) => runShardedSeed(seed), replayEnv),
    )
  }, 600_000)

  test("one seed twice gives the same run (history, virtual end time, traffic)", () => {
    const first = runShardedSeed(4242)
    const second = runShardedSeed(4242)
    expect(first.ok).toBe(true)
    expect(second.digest).toBe(first.digest)
    expect(second).toEqual(first)
  }, 60_000)
})
