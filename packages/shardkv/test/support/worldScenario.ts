/**
 * Pieces every sharded scenario in the seeded world repeats: the controller replicas started, a
 * bounded wait on a condition in virtual time, and a membership change retried on a group's
 * leader.
 */
import type { NodeId, RaftNodeShape } from "@kv/raft"
import { makeControllerServer } from "@kv/shardctrler"
import type { SimWorld } from "@kv/testkit"
import { Effect, Exit } from "effect"

/** Starts one controller replica per entry of `peers` (id → address). */
export const startControllers = (
  world: SimWorld,
  peers: Readonly<Record<number, string>>,
  nShards: number,
  seed: number,
) =>
  Effect.forEach(
    Object.entries(peers),
    ([id, address]) =>
      world.start(address, makeControllerServer({ id: Number(id) as NodeId, peers, nShards, seed: seed + Number(id) })),
    { discard: true },
  )

/** Polls `done` every 20 ms of virtual time (running `each` too); fails naming `what` after `boundMs`. */
export const waitUntil = (
  world: SimWorld,
  boundMs: number,
  what: string,
  done: () => boolean,
  each: () => void = () => {},
) =>
  Effect.gen(function* () {
    const from = world.now()
    while (!done()) {
      if (world.now() - from > boundMs) return yield* Effect.fail(`not within ${boundMs} ms: ${what}`)
      yield* Effect.sleep(20)
      each()
    }
  })

/**
 * Runs `make` on the group's current leader (`leaderOf`), retried every 50 ms while there is none or
 * it fails (another change in flight, a leader change); fails naming `what` after `boundMs`.
 */
export const changeOnLeader = (
  world: SimWorld,
  boundMs: number,
  leaderOf: () => RaftNodeShape | undefined,
  what: string,
  make: (raft: RaftNodeShape) => Effect.Effect<unknown, unknown>,
) =>
  Effect.gen(function* () {
    const from = world.now()
    while (true) {
      const leader = leaderOf()
      const exit = leader === undefined ? undefined : yield* Effect.exit(make(leader))
      if (exit !== undefined && Exit.isSuccess(exit)) return
      if (world.now() - from > boundMs) return yield* Effect.fail(`${what}: not done within ${boundMs} ms`)
      yield* Effect.sleep(50)
    }
  })
