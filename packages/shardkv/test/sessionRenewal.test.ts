/**
 * Proves that the sharded clerk renews an expired session per shard by itself: writes refused
 * because the shard's session is gone (and certainly not applied) are resent under a fresh one,
 * each applied once; an application sees an error only when a write's outcome is truly unknown.
 */
import { describe, expect } from "bun:test"
import type { KvClientShape } from "@kv/kvraft"
import { shardOf } from "@kv/shardctrler"
import type { SimWorld } from "@kv/testkit"
import { N_SHARDS, type OneGroupCluster, seededScenario, startOneGroupCluster } from "./support/oneGroupCluster.ts"

const FILE = "packages/shardkv/test/sessionRenewal.test.ts"
const TTL_MS = 400
const startCluster = startOneGroupCluster
const seeded = seededScenario(FILE)

const keys = Array.from({ length: 5 }, (_, i) => `key-${i}`)

/** Another key in the same shard as `key`. */
const neighbour = (key: string): string => {
  for (let j = 0; ; j++) {
    const other = `${key}-busy-${j}`
    if (shardOf(other, N_SHARDS) === shardOf(key, N_SHARDS)) return other
  }
}

type Cluster = OneGroupCluster

/** Writes to every key's shard until `ms` of virtual time have passed: a shard's log time moves on only with its commands. */
const keepBusy = async (world: SimWorld, { run }: Cluster, other: KvClientShape, ms: number) => {
  const until = world.now() + ms
  for (let i = 0; world.now() < until; i++) {
    await Promise.all(keys.map((key) => run(other.put(neighbour(key), String(i)))))
    await world.sleep(20)
  }
}

describe("the sharded clerk renews expired sessions per shard", () => {
  seeded("a client idle longer than the session lifetime just works: each write applies once", async (world) => {
    const cluster = await startCluster(world, { sessionTtlMs: TTL_MS, maxLogTimeStepMs: TTL_MS })
    try {
      const a = await cluster.clerk()
      const b = await cluster.clerk()
      await Promise.all(keys.map((key) => cluster.run(a.put(key, "x"))))
      await keepBusy(world, cluster, b, 3 * TTL_MS)
      const exits = await Promise.all(keys.map((key) => cluster.exit(a.append(key, "y"))))
      for (const exit of exits) expect(exit._tag).toBe("Success")
      for (const key of keys) expect(await cluster.run(a.get(key))).toBe("xy")
      await cluster.run(a.append(keys[0]!, "z"))
      expect(await cluster.run(a.get(keys[0]!))).toBe("xyz")
    } finally {
      await cluster.processes.cleanup()
    }
  })

  seeded("a client a shard has forgotten gets OutcomeUnknown once, then works", async (world) => {
    const cluster = await startCluster(world, { sessionTtlMs: TTL_MS, maxLogTimeStepMs: TTL_MS, maxExpiredSessions: 1 })
    try {
      const a = await cluster.clerk()
      const key = keys[0]!
      await cluster.run(a.put(key, "1"))
      // One-shot clients writing to the same shard push a's expired session out.
      const until = world.now() + 3 * TTL_MS
      for (let i = 0; world.now() < until; i++) {
        const once = await cluster.clerk()
        await cluster.run(once.put(neighbour(key), String(i)))
        await world.sleep(20)
      }
      const exit = await cluster.exit(a.put(key, "2"))
      expect(exit._tag).toBe("Failure")
      expect(JSON.stringify(exit)).toContain("OutcomeUnknown")
      await cluster.run(a.put(key, "3"))
      expect(await cluster.run(a.get(key))).toBe("3")
    } finally {
      await cluster.processes.cleanup()
    }
  })
})
