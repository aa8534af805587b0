/**
 * A kvraft group of three in the seeded world, for tests that run one scenario per seed: the
 * replicas' addresses, a way to (re)start one with the test's server options, and a runner that
 * prints the seed (replay with KV_SEED) and fails with the seed when the scenario does.
 */
import type { NodeId } from "@kv/raft"
import { seedFromEnv } from "@kv/sim"
import { SimWorld } from "@kv/testkit"
import { Effect, Exit } from "effect"
import { type KvServerOptions, makeKvServer } from "../../src/index.ts"

export const groupPeers: Readonly<Record<number, string>> = { 1: "kv-1", 2: "kv-2", 3: "kv-3" }
export const groupAddresses: readonly string[] = Object.values(groupPeers)

/** Starts (or restarts, on its disk) the replica at `address`, with `options` beside the defaults. */
export const startGroupReplica = (
  world: SimWorld,
  seed: number,
  address: string,
  options: Partial<KvServerOptions> = {},
) => {
  const id = Number(Object.entries(groupPeers).find(([, a]) => a === address)![0])
  return world.start(
    address,
    makeKvServer({ id: id as NodeId, peers: groupPeers, seed: seed + id, tickMs: 10, ...options }),
  )
}

/** Runs `program` in a fresh world for this run's seed; `file` goes in the replay hint. */
export const runWorldScenario = (
  name: string,
  file: string,
  program: (world: SimWorld, seed: number) => Effect.Effect<void, unknown, never>,
): void => {
  const seed = seedFromEnv().value
  console.log(`${name}: seed ${seed} (replay: KV_SEED=${seed} bun test ${file})`)
  const world = new SimWorld(seed)
  world.network.setMaxDelay(5)
  const exit = world.run(
    Effect.suspend(() => program(world, seed)),
    600_000,
  )
  if (Exit.isFailure(exit)) throw new Error(`seed ${seed}: ${String(exit.cause)}`)
}
