/**
 * Proves that a restarted replica whose log is past its snapshot budget snapshots once it has
 * replayed what it had committed, not at the first Ready of the replay: Raft hands a restart its
 * committed tail 1 MiB at a time, and a snapshot begun after the first MiB would hold the state
 * of a few entries past the one restored, leave most of the tail in the log (for the next restart
 * to replay again) and share the CPU with the rest of the replay.
 */

import { expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Storage } from "@kv/raft"
import { RpcNode, SimNetwork, Transport } from "@kv/rpc"
import { Effect, Exit, Layer, Scope } from "effect"
import { makeRsm, type RsmShape } from "../src/index.ts"
import type { ReplicatedStateMachine } from "../src/rsm/stateMachine.ts"

/** Commands of 10 KB: 300 of them are a 3 MiB log, three Readies of replay. */
const COMMAND_BYTES = 10_000
const COMMANDS = 300

/** A state machine counting applies; `begun` gets the last index applied when each snapshot began. */
const counting = (begun: number[]): ReplicatedStateMachine<number> => {
  let applied = 0
  let lastIndex = 0
  const bytes = () => new TextEncoder().encode(String(applied))
  return {
    apply: (_command, index) => {
      lastIndex = index
      return ++applied
    },
    snapshot: bytes,
    beginSnapshot: (roomBytes) => {
      begun.push(lastIndex)
      const state = bytes()
      return {
        step: () => {
          const out = new Uint8Array(roomBytes + state.length)
          out.set(state, roomBytes)
          return out
        },
      }
    },
    restore: (snapshot) => {
      applied = Number(new TextDecoder().decode(snapshot))
    },
  }
}

const startReplica = (
  dir: string,
  scope: Scope.Scope,
  maxRaftStateBytes: number,
  stateMachine: ReplicatedStateMachine<number>,
): Promise<RsmShape<number>> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const context = yield* Layer.buildWithScope(
        RpcNode.layer.pipe(
          Layer.provide(Transport.layerSim(new SimNetwork({ seed: 1 }), "rsm-1")),
          Layer.merge(Storage.layerFile(dir)),
        ),
        scope,
      )
      return yield* makeRsm({ raft: { id: 1, peers: { 1: "rsm-1" }, seed: 1 }, maxRaftStateBytes, stateMachine }).pipe(
        Effect.provideContext(context),
        Scope.provide(scope),
      )
    }),
  )

const untilLeader = async (rsm: RsmShape<number>, deadline: number) => {
  while (rsm.raft.status().role !== "leader") {
    if (Date.now() > deadline) throw new Error("no leader")
    await Bun.sleep(5)
  }
}

test("a restarted replica past its snapshot budget snapshots after replaying its committed tail", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kv-rsm-replay-"))
  const deadline = Date.now() + 30_000
  try {
    // A 3 MiB log and no snapshot (no budget).
    const first = await Effect.runPromise(Scope.make())
    let committedBefore: number
    try {
      const rsm = await startReplica(dir, first, 0, counting([]))
      await untilLeader(rsm, deadline)
      for (let i = 0; i < COMMANDS; i += 20) {
        await Promise.all(
          Array.from({ length: 20 }, (_, k) =>
            Effect.runPromise(rsm.submit(new Uint8Array(COMMAND_BYTES).fill(1 + ((i + k) % 100)))),
          ),
        )
      }
      committedBefore = rsm.appliedIndex()
      // The hard state on disk says the commit of what was written before it: one more write
      // records that the 3 MiB are committed.
      await Effect.runPromise(rsm.submit(new Uint8Array(1).fill(1)))
    } finally {
      await Effect.runPromise(Scope.close(first, Exit.void))
    }

    // Restarted with a 1 MiB budget: the log is three times over it from the start.
    const second = await Effect.runPromise(Scope.make())
    try {
      const begun: number[] = []
      const rsm = await startReplica(dir, second, 1 << 20, counting(begun))
      while (begun.length === 0) {
        if (Date.now() > deadline) throw new Error(`no snapshot; applied ${rsm.appliedIndex()}`)
        await Bun.sleep(5)
      }
      console.log(`committed before the restart: ${committedBefore}; first snapshot after it began at ${begun[0]}`)
      expect(begun[0]!).toBeGreaterThanOrEqual(committedBefore)
    } finally {
      await Effect.runPromise(Scope.close(second, Exit.void))
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}, 40_000)
