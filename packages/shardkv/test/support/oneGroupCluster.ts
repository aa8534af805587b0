/**
 * A controller and one group of three replicas in a seeded world, the group serving every shard,
 * and a scenario runner that prints its seed, replay command and virtual time.
 */
import { test } from "bun:test"
import type { KvClientShape, KvLimits } from "@kv/kvraft"
import type { NodeId } from "@kv/raft"
import { seedFromEnv } from "@kv/rpc"
import { makeControllerClient, makeControllerServer } from "@kv/shardctrler"
import { SimProcesses, SimWorld } from "@kv/testkit"
import type { Effect } from "effect"
import { makeShardKvClient, makeShardKvServer } from "../../src/index.ts"

export const N_SHARDS = 10
export const GID = 100
export const controllerAddresses = ["ctrl-0", "ctrl-1", "ctrl-2"]
export const groupAddresses = ["g100-0", "g100-1", "g100-2"]

const peersOf = (addresses: readonly string[]): Record<number, string> =>
  Object.fromEntries(addresses.map((address, k) => [k + 1, address]))

export const startOneGroupCluster = async (world: SimWorld, limits: Partial<KvLimits>) => {
  const seed = world.seed
  const processes = new SimProcesses(world)
  const run = <A, E>(effect: Effect.Effect<A, E>) => processes.run(effect)
  const ctrlPeers = peersOf(controllerAddresses)
  const groupPeers = peersOf(groupAddresses)
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
        controllers: controllerAddresses,
        nShards: N_SHARDS,
        limits,
        seed: seed + 7_919 * (i + 1),
      }),
    )
  }
  const rpc = await processes.client("clerks")
  const admin = await run(makeControllerClient(rpc, { controllers: controllerAddresses, deadlineMs: 20_000 }))
  await run(admin.join({ [String(GID)]: groupAddresses }))
  const clerk = (deadlineMs = 20_000): Promise<KvClientShape> =>
    run(makeShardKvClient(rpc, { controllers: controllerAddresses, deadlineMs }))
  return { processes, clerk, run, exit: <A, E>(effect: Effect.Effect<A, E>) => world.driver.exit(effect) }
}

export type OneGroupCluster = Awaited<ReturnType<typeof startOneGroupCluster>>

/** A seeded scenario in virtual time: prints its seed, replay command and virtual time. */
export const seededScenario =
  (file: string) =>
  (name: string, body: (world: SimWorld) => Promise<void>): void =>
    test(name, async () => {
      const seed = seedFromEnv()
      const replay = `KV_SEED=${seed} bun test ${file} -t "${name}"`
      const world = new SimWorld(seed)
      try {
        await world.drive(() => body(world))
        console.log(`"${name}" passed: ${(world.now() / 1000).toFixed(1)} s of virtual time (replay: ${replay})`)
      } catch (error) {
        console.error(`"${name}" failed; replay: ${replay}`)
        throw error
      }
    }, 60_000)
