/**
 * Proves that a shard group's replica restarting from a large snapshot restores it a slice at a
 * time while its Raft node is up: it is started and answers its status before its state is
 * restored (applied 0, the snapshot's index not reached; its group status says it is restoring),
 * then the group serves every key. Before,
 * the snapshot was restored inside the node's start, which answered nothing until it was over (a
 * group holding a million keys missed every election timer of its restart).
 */
import { describe, expect } from "bun:test"
import type { RaftStatus } from "@kv/raft"
import { shardOf } from "@kv/shardctrler"
import { labTest, waitUntil } from "./support/labTest.ts"
import { N_SHARDS } from "./support/shardLab.ts"

const FILE = "packages/shardkv/test/startupRestore.test.ts"
const SHARD = 4
const KEYS = 40_000
const PER_TXN = 100

/** `count` keys that all hash to SHARD. */
const keysOfShard = (count: number): string[] => {
  const keys: string[] = []
  for (let i = 0; keys.length < count; i++) if (shardOf(`k${i}`, N_SHARDS) === SHARD) keys.push(`k${i}`)
  return keys
}

describe("restart of a shard group", () => {
  labTest(
    "a replica restarting from a large snapshot is up and answers before its state is restored",
    FILE,
    { maxRaftStateBytes: 512 * 1024 },
    async ({ lab }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      const keys = keysOfShard(KEYS)
      for (let at = 0; at < keys.length; at += PER_TXN) {
        const success = keys.slice(at, at + PER_TXN).map((key) => ({ op: "put" as const, key, value: `v-${key}` }))
        await lab.run(ck.client.txn({ compare: [], success }))
      }
      await waitUntil(lab, "every replica snapshotted the shard", 30_000, () =>
        [0, 1, 2].every((i) => lab.persisted(0, i).snapshotBytes > KEYS * 10),
      )

      await lab.crashGroup(0)
      let first: RaftStatus | undefined
      let restoringAtFirst: boolean | undefined
      await lab.restart(0, 0, (server) => {
        first = server.rsm.raft.status()
        restoringAtFirst = server.status().restoring
      })
      if (first === undefined) throw new Error("the restarted replica was never built")
      // Its status says so (kv status shows it rather than the empty machine it holds meanwhile).
      expect(restoringAtFirst).toBe(true)
      // Up, with its log and the snapshot's index known, and the snapshot not yet restored.
      expect(first.snapshotIndex).toBeGreaterThan(0)
      expect(first.appliedIndex).toBeLessThan(first.snapshotIndex)
      console.log(`restarted: snapshot at ${first.snapshotIndex}, applied ${first.appliedIndex} at the first status`)

      await lab.restart(0, 1)
      await lab.restart(0, 2)
      await waitUntil(lab, "replica 0 applied its snapshot", 30_000, () => {
        const status = lab.server(0, 0)!.rsm.raft.status()
        return status.appliedIndex >= (first?.snapshotIndex ?? 0)
      })
      expect(lab.server(0, 0)!.status()).toMatchObject({ restoring: false, configNum: 1 })
      for (const key of [keys[0]!, keys[KEYS >> 1]!, keys[KEYS - 1]!]) {
        expect(await lab.run(ck.client.get(key))).toBe(`v-${key}`)
      }
    },
  )
})
