/**
 * Proves that the sharded clerk renews an expired session per shard by itself: writes refused
 * because the shard's session is gone (and certainly not applied) are resent under a fresh one,
 * each applied once; an application sees an error only when a write's outcome is truly unknown.
 */
import { describe, expect, test } from "bun:test"
import type { KvClientShape, KvLimits } from "@kv/kvraft"
import type { NodeId } from "@kv/raft"
import { seedFromEnv } from "@kv/rpc"
import { makeControllerClient, makeControllerServer, shardOf } from "@kv/shardctrler"
import { SimProcesses, SimWorld } from "@kv/testkit"
import type { Effect } from "effect"
import { makeShardKvClient, makeShardKvServer } from "../src/index.ts"

const FILE = "packages/shardkv/test/sessionRenewal.test.ts"
const TTL_MS = 400
const N_SHARDS = 10
const GID = 100

/** A controller and one group of three replicas in `world`, the group serving every shard. */
const startCluster = async (world: SimWorld, limits: Partial<KvLimits>) => {
  const seed = world.seed
  const processes = new SimProcesses(world)
  const run = <A, E>(effect: Effect.Effect<A, E>) => processes.run(effect)
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
  return { processes, clerk, run, exit: <A, E>(effect: Effect.Effect<A, E>) => world.driver.exit(effect) }
}

const keys = Array.from({ length: 5 }, (_, i) => `key-${i}`)

/** Another key in the same shard as `key`. */
const neighbour = (key: string): string => {
  for (let j = 0; ; j++) {
    const other = `${key}-busy-${j}`
    if (shardOf(other, N_SHARDS) === shardOf(key, N_SHARDS)) return other
  }
}

type Cluster = Awaited<ReturnType<typeof startCluster>>

/** Writes to every key's shard until `ms` of virtual time have passed: a shard's log time moves on only with its commands. */
const keepBusy = async (world: SimWorld, { run }: Cluster, other: KvClientShape, ms: number) => {
  const until = world.now() + ms
  for (let i = 0; world.now() < until; i++) {
    await Promise.all(keys.map((key) => run(other.put(neighbour(key), String(i)))))
    await world.sleep(20)
  }
}

/** A seeded scenario in virtual time: prints its seed, replay command and virtual time. */
const seeded = (name: string, body: (world: SimWorld) => Promise<void>) =>
  test(name, async () => {
    const seed = seedFromEnv()
    const replay = `KV_SEED=${seed} bun test ${FILE} -t "${name}"`
    const world = new SimWorld(seed)
    try {
      await world.drive(() => body(world))
      console.log(`"${name}" passed: ${(world.now() / 1000).toFixed(1)} s of virtual time (replay: ${replay})`)
    } catch (error) {
      console.error(`"${name}" failed; replay: ${replay}`)
      throw error
    }
  }, 60_000)

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
