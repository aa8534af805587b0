/**
 * Proves that a shard of any size moves whole: its data goes to the new owner in pieces that
 * each fit a Raft message, and the new owner serves it only once every piece is installed, even
 * when its leader changes half way.
 */
import { describe, expect } from "bun:test"
import { shardOf } from "@kv/shardctrler"
import { labTest, waitUntil } from "./support/labTest.ts"
import { N_SHARDS } from "./support/shardLab.ts"

const FILE = "packages/shardkv/test/largeShard.test.ts"
const VALUE_CHARS = 1_000_000
const KEYS = 100

/** `count` keys that all hash to `shard`. */
const keysOfShard = (shard: number, count: number): string[] => {
  const keys: string[] = []
  for (let i = 0; keys.length < count; i++) if (shardOf(`big-${i}`, N_SHARDS) === shard) keys.push(`big-${i}`)
  return keys
}

/** A 1 MB value that differs per key (its first characters name it). */
const bigValue = (key: string): string => `${key}:`.padEnd(VALUE_CHARS, key.at(-1))

describe("shards of any size", () => {
  labTest(
    "a 100 MB shard moves whole, across a leader change at the new owner",
    FILE,
    { maxRaftStateBytes: 32 * 1024 * 1024 },
    async ({ lab }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      const shard = 3
      const keys = keysOfShard(shard, KEYS)
      for (const key of keys) await lab.run(ck.client.put(key, bigValue(key)))

      await lab.join(1)
      await lab.move(shard, 1)
      const target = (await lab.query()).num

      // Once the new owner's leader has installed some of the shard but not all, it crashes.
      const pullingAtLeader = () => {
        const leader = lab.leader(1)
        const machine = leader === undefined ? undefined : lab.server(1, leader)?.machine()
        return machine?.shardState(shard) === "Pulling" && machine.installedBytes(shard) > 0
      }
      await waitUntil(lab, "the new owner's leader has installed a part of the shard", 60_000, pullingAtLeader, 1)
      const leader = lab.leader(1)!
      for (const s of lab.groups[1]!.servers) {
        // Not served before all of it is there.
        if (s?.machine().shardState(shard) === "Pulling") expect(s.machine().get(keys[0]!).ok).toBe(false)
      }
      console.log(
        `the new owner's leader crashes with ${lab.server(1, leader)?.machine().installedBytes(shard)} B installed`,
      )
      await lab.crash(1, leader)
      await lab.restart(1, leader)

      await waitUntil(lab, "the new owner serves the shard", 110_000, () =>
        lab.groups[1]!.servers.some(
          (s) => s?.machine().config.num === target && s.machine().shardState(shard) !== "Pulling",
        ),
      )
      for (const key of keys) {
        const value = await lab.run(ck.client.get(key))
        expect(value.length).toBe(VALUE_CHARS)
        expect(value === bigValue(key)).toBe(true)
      }
      // The old owner deletes its copy once the new one has it all.
      await waitUntil(lab, "the old owner dropped its copy", 60_000, () =>
        lab.groups[0]!.servers.every((s) => s === undefined || s.machine().shardState(shard) === "Absent"),
      )
    },
    300_000,
  )
})
