/**
 * Proves that the sharded clerk renews an expired session per shard by itself: writes refused
 * because the shard's session is gone (and certainly not applied) are resent under a fresh one,
 * each applied once; an application sees an error only when a write's outcome is truly unknown.
 */
import { describe, expect, test } from "bun:test"
import type { KvClientShape, KvLimits } from "@kv/kvraft"
import type { NodeId } from "@kv/raft"
import { SimNetwork, seedFromEnv } from "@kv/rpc"
import { makeControllerClient, makeControllerServer, shardOf } from "@kv/shardctrler"
import { SimProcesses } from "@kv/testkit"
import { Effect } from "effect"
import { makeShardKvClient, makeShardKvServer } from "../src/index.ts"

const FILE = "packages/shardkv/test/sessionRenewal.test.ts"
const TTL_MS = 400
const N_SHARDS = 10
const GID = 100

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

/** A controller and one group of three replicas on a SimNetwork, the group serving every shard. */
const startCluster = async (seed: number, limits: Partial<KvLimits>) => {
  const network = new SimNetwork({ seed })
  const processes = new SimProcesses(network)
  const ctrlPeers: Record<number, string> = { 1: "ctrl-0", 2: "ctrl-1", 3: "ctrl-2" }
  const groupPeers: Record<number, string> = { 1: "g100-0", 2: "g100-1", 3: "g100-2" }
  const controllers = Object.values(ctrlPeers)
  for (let i = 0; i < 3; i++) {
    await processes.start(
      ctrlPeers[i + 1]!,
      makeControllerServer({ id: (i + 1) as NodeId, peers: ctrlPeers, nShards: N_SHARDS, seed: seed + i }),
    )
    await processes.start(
      groupPeers[i + 1]!,
      makeShardKvServer({
        gid: GID,
        id: (i + 1) as NodeId,
        peers: groupPeers,
        controllers,
        nShards: N_SHARDS,
        limits,
        seed: seed + 7_919 * (i + 1),
      }),
    )
  }
  const rpc = await processes.client("clerks")
  const admin = await run(makeControllerClient(rpc, { controllers, deadlineMs: 20_000 }))
  await run(admin.join({ [String(GID)]: Object.values(groupPeers) }))
  const clerk = (): Promise<KvClientShape> => run(makeShardKvClient(rpc, { controllers, deadlineMs: 20_000 }))
  return { processes, clerk }
}

const keys = Array.from({ length: 5 }, (_, i) => `key-${i}`)

/** Another key in the same shard as `key`. */
const neighbour = (key: string): string => {
  for (let j = 0; ; j++) {
    const other = `${key}-busy-${j}`
    if (shardOf(other, N_SHARDS) === shardOf(key, N_SHARDS)) return other
  }
}

/** Writes to every key's shard until `ms` of wall time have passed: a shard's log time moves on only with its commands. */
const keepBusy = async (other: KvClientShape, ms: number) => {
  const until = Date.now() + ms
  for (let i = 0; Date.now() < until; i++) {
    await Promise.all(keys.map((key) => run(other.put(neighbour(key), String(i)))))
    await Bun.sleep(20)
  }
}

const seeded = (name: string, body: (seed: number) => Promise<void>) =>
  test(name, async () => {
    const seed = seedFromEnv()
    try {
      await body(seed)
    } catch (error) {
      console.error(`"${name}" failed; replay: KV_SEED=${seed} bun test ${FILE} -t "${name}"`)
      throw error
    }
  }, 60_000)

describe("the sharded clerk renews expired sessions per shard", () => {
  seeded("a client idle longer than the session lifetime just works: each write applies once", async (seed) => {
    const cluster = await startCluster(seed, { sessionTtlMs: TTL_MS, maxLogTimeStepMs: TTL_MS })
    try {
      const a = await cluster.clerk()
      const b = await cluster.clerk()
      await Promise.all(keys.map((key) => run(a.put(key, "x"))))
      await keepBusy(b, 3 * TTL_MS)
      const exits = await Promise.all(keys.map((key) => Effect.runPromiseExit(a.append(key, "y"))))
      for (const exit of exits) expect(exit._tag).toBe("Success")
      for (const key of keys) expect(await run(a.get(key))).toBe("xy")
      await run(a.append(keys[0]!, "z"))
      expect(await run(a.get(keys[0]!))).toBe("xyz")
    } finally {
      await cluster.processes.cleanup()
    }
  })

  seeded("a client a shard has forgotten gets OutcomeUnknown once, then works", async (seed) => {
    const cluster = await startCluster(seed, { sessionTtlMs: TTL_MS, maxLogTimeStepMs: TTL_MS, maxExpiredSessions: 1 })
    try {
      const a = await cluster.clerk()
      const key = keys[0]!
      await run(a.put(key, "1"))
      // One-shot clients writing to the same shard push a's expired session out.
      const until = Date.now() + 3 * TTL_MS
      for (let i = 0; Date.now() < until; i++) {
        const once = await cluster.clerk()
        await run(once.put(neighbour(key), String(i)))
        await Bun.sleep(20)
      }
      const exit = await Effect.runPromiseExit(a.put(key, "2"))
      expect(exit._tag).toBe("Failure")
      expect(JSON.stringify(exit)).toContain("OutcomeUnknown")
      await run(a.put(key, "3"))
      expect(await run(a.get(key))).toBe("3")
    } finally {
      await cluster.processes.cleanup()
    }
  })
})
