/**
 * Proves that a restarted replica whose log is past its snapshot budget snapshots once it has
 * replayed what it had committed, not at the first Ready of the replay: Raft hands a restart its
 * committed tail 1 MiB at a time, and a snapshot begun after the first MiB would hold the state
 * of a few entries past the one restored, leave most of the tail in the log (for the next restart
 * to replay again) and share the CPU with the rest of the replay. And that the snapshot holds
 * exactly that tail, not the new term's entries that reached the replica with its end: a replica
 * stopped with the same log (a host back after the others restarted) can then be sent entries
 * instead of the whole snapshot.
 */

import { expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Storage } from "@kv/raft"
import { RpcNode, SimNetwork, Transport } from "@kv/rpc"
import { Effect, Exit, Layer, Option, Scope } from "effect"
import { makeRsm, type RsmShape } from "../src/index.ts"
import type { ReplicatedStateMachine } from "../src/rsm/stateMachine.ts"

/** Commands of 10 KB: 300 of them are a 3 MiB log, three Readies of replay. */
const COMMAND_BYTES = 10_000
const COMMANDS = 300
/**
 * Ten Readies of replay: the replica that replays slowly learns of the new term's entries being
 * committed (a probe, an Append, its ack, a heartbeat: a few of its Readies) while more than one
 * Ready of its own tail is left.
 */
const LONG_TAIL_COMMANDS = 1_000

/**
 * A state machine counting applies; `begun` gets the last index applied when each snapshot began.
 * `applyMs` holds the thread per apply, so that a replay outlasts an election timeout.
 */
const counting = (begun: number[], applyMs = 0): ReplicatedStateMachine<number> => {
  let applied = 0
  let lastIndex = 0
  const bytes = () => new TextEncoder().encode(String(applied))
  return {
    apply: (_command, index) => {
      const until = performance.now() + applyMs
      while (performance.now() < until) {}
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

/** Replica `id` of a group of `size` on `network` (one replica alone by default). */
const startReplica = (
  dir: string,
  scope: Scope.Scope,
  maxRaftStateBytes: number,
  stateMachine: ReplicatedStateMachine<number>,
  group: { readonly id: number; readonly size: number; readonly network: SimNetwork } = {
    id: 1,
    size: 1,
    network: new SimNetwork({ seed: 1 }),
  },
): Promise<RsmShape<number>> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const context = yield* Layer.buildWithScope(
        RpcNode.layer.pipe(
          Layer.provide(Transport.layerSim(group.network, `rsm-${group.id}`)),
          Layer.merge(Storage.layerFile(dir)),
        ),
        scope,
      )
      const peers = Object.fromEntries(Array.from({ length: group.size }, (_, k) => [k + 1, `rsm-${k + 1}`]))
      return yield* makeRsm({ raft: { id: group.id, peers, seed: group.id }, maxRaftStateBytes, stateMachine }).pipe(
        Effect.provideContext(context),
        Scope.provide(scope),
      )
    }),
  )

const leaderAmong = async (replicas: readonly RsmShape<number>[], deadline: number): Promise<RsmShape<number>> => {
  for (;;) {
    const leader = replicas.find((r) => r.raft.status().role === "leader")
    if (leader !== undefined) return leader
    if (Date.now() > deadline) throw new Error(`no leader among ${replicas.length} replicas`)
    await Bun.sleep(5)
  }
}

/** `count` commands of COMMAND_BYTES through `leader`, 20 at a time. */
const writeCommands = async (leader: RsmShape<number>, count: number): Promise<void> => {
  for (let i = 0; i < count; i += 20) {
    await Promise.all(
      Array.from({ length: 20 }, (_, k) =>
        Effect.runPromise(leader.submit(new Uint8Array(COMMAND_BYTES).fill(1 + ((i + k) % 100)))),
      ),
    )
  }
}

const untilLeader = async (rsm: RsmShape<number>, deadline: number) => {
  while (rsm.raft.status().role !== "leader") {
    if (Date.now() > deadline) throw new Error("no leader")
    await Bun.sleep(5)
  }
}

/**
 * A lone replica in `dir` writes COMMANDS (a 3 MiB log, no snapshot), then one more command, so
 * that its hard state on disk says the 3 MiB are committed; then it stops. `started` sees it first.
 * The index applied after the 3 MiB.
 */
const writeTailAndStop = async (
  dir: string,
  deadline: number,
  started: (rsm: RsmShape<number>) => Promise<void> = async () => {},
): Promise<number> => {
  const scope = await Effect.runPromise(Scope.make())
  try {
    const rsm = await startReplica(dir, scope, 0, counting([]))
    await started(rsm)
    await untilLeader(rsm, deadline)
    await writeCommands(rsm, COMMANDS)
    const committed = rsm.appliedIndex()
    await Effect.runPromise(rsm.submit(new Uint8Array(1).fill(1)))
    return committed
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

test("a replica that learns of the new term's entries while it replays snapshots at its own tail's end, not past them", async () => {
  const root = mkdtempSync(join(tmpdir(), "kv-rsm-replay-"))
  const dirs = [1, 2, 3].map((k) => join(root, `replica-${k}`))
  const deadline = Date.now() + 30_000
  try {
    // Three replicas write a 10 MiB log, no snapshot; then all stop.
    let last = 0
    let committed = 0
    {
      const network = new SimNetwork({ seed: 7 })
      const scope = await Effect.runPromise(Scope.make())
      try {
        const replicas = await Promise.all(
          dirs.map((dir, k) => startReplica(dir, scope, 0, counting([]), { id: k + 1, size: 3, network })),
        )
        const leader = await leaderAmong(replicas, deadline)
        await writeCommands(leader, LONG_TAIL_COMMANDS)
        committed = leader.appliedIndex()
        // Every replica's hard state records that commit with the next write.
        await Effect.runPromise(leader.submit(new Uint8Array(1).fill(1)))
        while (replicas.some((r) => r.appliedIndex() < committed + 1)) {
          if (Date.now() > deadline) throw new Error("replicas behind")
          await Bun.sleep(5)
        }
        last = Math.min(...replicas.map((r) => r.raft.status().lastIndex))
      } finally {
        await Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }
    // Replicas 2 and 3 come back, elect a leader and commit a write of the new term; then replica
    // 1 comes back and replays its tail at 2 ms an entry (0.2 s per Ready, the other
    // replicas' fibers running between its Readies): it learns of the new term's entries while
    // more than one Ready of its own tail is left, so they reach it with the end of its tail.
    const network = new SimNetwork({ seed: 8 })
    const scope = await Effect.runPromise(Scope.make())
    try {
      const others = await Promise.all(
        [2, 3].map((id) => startReplica(dirs[id - 1]!, scope, 0, counting([]), { id, size: 3, network })),
      )
      const leader = await leaderAmong(others, deadline)
      await Effect.runPromise(leader.submit(new Uint8Array(1).fill(2)))
      const begun: number[] = []
      const slow = await startReplica(dirs[0]!, scope, 1 << 20, counting(begun, 2), { id: 1, size: 3, network })
      while (begun.length === 0 || slow.appliedIndex() <= last) {
        if (Date.now() > deadline) throw new Error(`no snapshot; applied ${slow.appliedIndex()}`)
        await Bun.sleep(5)
      }
      console.log(
        `written before the restart through ${last} (committed ${committed}); the slow replica's first snapshot at ${begun[0]}; applied ${slow.appliedIndex()}`,
      )
      // A replica stopped with the same log must be able to catch up from entries, not a snapshot.
      expect(begun[0]!).toBeGreaterThanOrEqual(committed)
      expect(begun[0]!).toBeLessThanOrEqual(last)
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}, 40_000)

test("a restarted replica past its snapshot budget snapshots after replaying its committed tail", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kv-rsm-replay-"))
  const deadline = Date.now() + 30_000
  try {
    // A 3 MiB log and no snapshot (no budget).
    const committedBefore = await writeTailAndStop(dir, deadline)

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

test("replayed is done once a restarted replica has applied the tail it started with, and at once for an empty log", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kv-rsm-replay-"))
  const deadline = Date.now() + 30_000
  try {
    const committedBefore = await writeTailAndStop(dir, deadline, async (rsm) => {
      // An empty log has nothing to replay.
      expect(await Effect.runPromise(rsm.replayed.pipe(Effect.timeoutOption(1_000)))).toEqual(Option.some(undefined))
    })
    // Replayed at 1 ms an entry: 0.3 s of tail, three Readies.
    const second = await Effect.runPromise(Scope.make())
    try {
      const rsm = await startReplica(dir, second, 0, counting([], 1))
      const appliedAtStart = rsm.appliedIndex()
      const appliedWhenReplayed = await Effect.runPromise(rsm.replayed.pipe(Effect.map(() => rsm.appliedIndex())))
      console.log(
        `applied at start ${appliedAtStart}, when replayed ${appliedWhenReplayed}, committed ${committedBefore}`,
      )
      expect(appliedAtStart).toBeLessThan(committedBefore)
      expect(appliedWhenReplayed).toBeGreaterThanOrEqual(committedBefore)
    } finally {
      await Effect.runPromise(Scope.close(second, Exit.void))
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}, 40_000)
