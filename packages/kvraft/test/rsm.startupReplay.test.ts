/**
 * Proves that a restarting replica restores its stored snapshot a slice at a time while its Raft
 * node answers: a group restarted together elects a leader before any replica's restore is over,
 * reads wait for the leader's state, and while the leader's heartbeats say it is replaying, its
 * followers replay nothing (the group waits for the leader's replay, not theirs); a replica
 * that comes back to a leader that serves, elected before or after it stopped, replays at full
 * speed. Before, the snapshot was restored inside the node's start: three replicas of a 1M-key
 * store answered no vote for the first second of a restart.
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

const COMMAND_BYTES = 1_000
/** Every replica snapshots several times over these commands at this budget. */
const COMMANDS = 60
const BUDGET = 8 * 1024
/** A restore: this many slices of this much work each. */
const SLICES = 40
const SLICE_MS = 3

/** What a replica's restore did: its work in slices, when each began, and when it ended (performance.now). */
interface RestoreLog {
  busyMs: number
  stepsAt: number[]
  firstStepAt: number | undefined
  restoredAt: number | undefined
}

/**
 * A state machine counting applies, whose snapshot is the count. Its restore does nothing until
 * `gate.open`, then takes SLICES slices of SLICE_MS of work each (a restore without slices ends
 * at once, logged the same way).
 */
const counting = (gate: { open: boolean }, log: RestoreLog): ReplicatedStateMachine<number> & { count(): number } => {
  let applied = 0
  const bytes = () => new TextEncoder().encode(String(applied))
  const restored = (snapshot: Uint8Array) => {
    applied = Number(new TextDecoder().decode(snapshot))
    log.restoredAt = performance.now()
  }
  return {
    count: () => applied,
    apply: () => ++applied,
    snapshot: bytes,
    restore: restored,
    beginRestore: (snapshot) => {
      let left = SLICES
      return {
        step: () => {
          if (!gate.open) return false
          const start = performance.now()
          log.firstStepAt ??= start
          log.stepsAt.push(start)
          while (performance.now() < start + SLICE_MS) {}
          log.busyMs += performance.now() - start
          if (--left > 0) return false
          restored(snapshot)
          return true
        },
      }
    },
  }
}

const newLog = (): RestoreLog => ({ busyMs: 0, stepsAt: [], firstStepAt: undefined, restoredAt: undefined })

/** Replica `id` of three on `network`, with its data in `dirs[id - 1]`. */
const startReplica = (
  dirs: readonly string[],
  id: number,
  network: SimNetwork,
  scope: Scope.Scope,
  stateMachine: ReplicatedStateMachine<number>,
  budget = BUDGET,
): Promise<RsmShape<number>> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const context = yield* Layer.buildWithScope(
        RpcNode.layer.pipe(
          Layer.provide(Transport.layerSim(network, `rsm-${id}`)),
          Layer.merge(Storage.layerFile(dirs[id - 1]!)),
        ),
        scope,
      )
      const peers = { 1: "rsm-1", 2: "rsm-2", 3: "rsm-3" }
      return yield* makeRsm({ raft: { id, peers, seed: id }, maxRaftStateBytes: budget, stateMachine }).pipe(
        Effect.provideContext(context),
        Scope.provide(scope),
      )
    }),
  )

const waitFor = async (what: string, ok: () => boolean, deadline: number): Promise<void> => {
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(2)
  }
}

const leaderOf = (replicas: readonly RsmShape<number>[]) => replicas.find((r) => r.raft.status().role === "leader")

/**
 * Three replicas in `dirs`, on a network of `seed`, apply `commands` more commands of COMMAND_BYTES
 * at `budget`; once every replica has applied them (and, when `snapshotted`, holds a snapshot) they stop.
 */
const writeAndStop = async (
  dirs: readonly string[],
  deadline: number,
  options: {
    readonly seed: number
    readonly commands: number
    readonly commandBytes?: number
    readonly budget?: number
    readonly snapshotted?: boolean
  },
): Promise<void> => {
  const network = new SimNetwork({ seed: options.seed })
  const scope = await Effect.runPromise(Scope.make())
  try {
    const open = { open: true }
    const replicas = await Promise.all(
      [1, 2, 3].map((id) => startReplica(dirs, id, network, scope, counting(open, newLog()), options.budget)),
    )
    await waitFor("a leader", () => leaderOf(replicas) !== undefined, deadline)
    const leader = leaderOf(replicas)!
    for (let i = 0; i < options.commands; i++) {
      await Effect.runPromise(leader.submit(new Uint8Array(options.commandBytes ?? COMMAND_BYTES).fill(1 + (i % 100))))
    }
    const applied = leader.appliedIndex()
    await waitFor(
      "every replica's apply",
      () =>
        replicas.every(
          (r) => r.appliedIndex() >= applied && (options.snapshotted !== true || r.raft.snapshotIndex() > 0),
        ),
      deadline,
    )
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/**
 * Runs `body` on the data directories of three replicas that applied COMMANDS and each snapshotted,
 * then stopped; removes them after.
 */
const withFilledGroup = async (body: (dirs: readonly string[], deadline: number) => Promise<void>): Promise<void> => {
  const root = mkdtempSync(join(tmpdir(), "kv-rsm-startup-"))
  const dirs = [1, 2, 3].map((k) => join(root, `replica-${k}`))
  const deadline = Date.now() + 30_000
  try {
    await writeAndStop(dirs, deadline, { seed: 11, commands: COMMANDS, snapshotted: true })
    await body(dirs, deadline)
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}

test(
  "a group restarted together elects a leader while its replicas restore; followers of it give way to its replay",
  () =>
    withFilledGroup(async (dirs, deadline) => {
      const network = new SimNetwork({ seed: 12 })
      const scope = await Effect.runPromise(Scope.make())
      try {
        const gate = { open: false }
        const logs = [newLog(), newLog(), newLog()]
        const machines = logs.map((log) => counting(gate, log))
        const replicas = await Promise.all(
          [1, 2, 3].map((id) => startReplica(dirs, id, network, scope, machines[id - 1]!)),
        )
        await waitFor("a leader while every restore waits", () => leaderOf(replicas) !== undefined, deadline)
        expect(logs.map((l) => l.restoredAt)).toEqual([undefined, undefined, undefined])
        const leader = leaderOf(replicas)!
        const k = replicas.indexOf(leader)

        // A read waits for the leader's state.
        const read = Effect.runPromise(leader.read(() => machines[k]!.count()))
        const early = await Effect.runPromise(
          leader.read(() => machines[k]!.count()).pipe(Effect.timeoutOption(200), Effect.option),
        )
        expect(early).toEqual(Option.some(Option.none()))
        expect(leader.appliedIndex()).toBe(0)
        // What its status says (`kv status`, metrics): the state machine's index, not what Raft handed over.
        expect(leader.raft.status().appliedIndex).toBe(0)

        gate.open = true
        expect(await read).toBe(COMMANDS)
        await waitFor("every restore", () => logs.every((l) => l.restoredAt !== undefined), deadline)
        // While the leader replayed, no follower did a slice (the three share this process's
        // thread): without giving way, all three restore in turn and end together; pausing after
        // each slice instead, a follower still did one for every four of the leader's.
        const leaderDone = logs[k]!.restoredAt!
        const doneBefore = logs.map((l) => l.stepsAt.filter((at) => at < leaderDone).length)
        console.log(
          `leader replica ${k + 1}; slices of ${SLICES} done when the leader's restore ended: ${doneBefore.join(", ")}`,
        )
        for (const [i, log] of logs.entries()) {
          if (i === k) continue
          expect(log.restoredAt!).toBeGreaterThan(leaderDone)
          expect(doneBefore[i]!).toBe(0)
        }
      } finally {
        await Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }),
  40_000,
)

test(
  "a replica back to a serving leader restores at full speed, whether that leader was elected before or while it was down",
  () =>
    withFilledGroup(async (dirs, deadline) => {
      const network = new SimNetwork({ seed: 13 })
      const scopes = await Promise.all([1, 2, 3].map(() => Effect.runPromise(Scope.make())))
      try {
        const open = { open: true }
        const replicas = await Promise.all(
          [1, 2, 3].map((id) => startReplica(dirs, id, network, scopes[id - 1]!, counting(open, newLog()))),
        )
        await waitFor("a leader", () => leaderOf(replicas) !== undefined, deadline)
        const first = leaderOf(replicas)!
        await waitFor("the leader's replay", () => first.appliedIndex() >= first.raft.status().commitIndex, deadline)
        const f = replicas.findIndex((r) => r !== first)
        const restartFollower = async () => {
          await Effect.runPromise(Scope.close(scopes[f]!, Exit.void))
          scopes[f] = await Effect.runPromise(Scope.make())
          const log = newLog()
          replicas[f] = await startReplica(dirs, f + 1, network, scopes[f]!, counting(open, log))
          await waitFor("the follower's restore", () => log.restoredAt !== undefined, deadline)
          return log
        }
        const rolled = await restartFollower()

        // Down again while the leader hands over to the third replica: back to a leader of a later term.
        await Effect.runPromise(Scope.close(scopes[f]!, Exit.void))
        const third = replicas.find((r, i) => i !== f && r !== first)!
        await Effect.runPromise(first.raft.transferLeadership(third.raft.id))
        await waitFor("the handover", () => third.raft.status().role === "leader", deadline)
        const crashed = await restartFollower()

        for (const [what, log] of [
          ["rolled", rolled],
          ["back after an election", crashed],
        ] as const) {
          const wall = log.restoredAt! - log.firstStepAt!
          console.log(`${what}: replica ${f + 1}'s restore wall/work ms ${wall.toFixed(0)}/${log.busyMs.toFixed(0)}`)
          // Giving way, it would restore nothing until the leader's next heartbeat said otherwise.
          expect(wall).toBeLessThan(log.busyMs * 2.5)
        }
      } finally {
        for (const scope of scopes) await Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }),
  40_000,
)

test(
  "a replica stopped while it replays finishes the replay and snapshots the tail, so its next start has none",
  () =>
    withFilledGroup(async (dirs, deadline) => {
      /** A budget whose quarter the tail written below passes, and which it stays under. */
      const budget = 256 * 1024
      // A tail past the snapshot of more than a quarter of the budget, and under it.
      await writeAndStop(dirs, deadline, { seed: 14, commands: 100, budget })
      const network = new SimNetwork({ seed: 15 })
      const scope = await Effect.runPromise(Scope.make())
      try {
        const gate = { open: false }
        const replicas = await Promise.all(
          [1, 2, 3].map((id) => startReplica(dirs, id, network, scope, counting(gate, newLog()), budget)),
        )
        const replica = replicas[0]!
        const replayEnd = replica.raft.status().commitIndex
        const snapshotBefore = replica.raft.snapshotIndex()
        expect(replica.raft.raftStateBytes()).toBeGreaterThan(budget / 4)
        const stop = Effect.runPromise(replica.snapshotBeforeStop)
        let stopped: number | undefined | "pending" = "pending"
        void stop.then((index) => {
          stopped = index
        })
        // The group elects a leader while every restore waits (first test): the stop waits on.
        await waitFor("a leader", () => leaderOf(replicas) !== undefined, deadline)
        expect(stopped).toBe("pending")
        gate.open = true
        const index = await stop
        console.log(`replay end ${replayEnd}; snapshot ${snapshotBefore} before the stop, ${index} at it`)
        expect(index).toBeGreaterThanOrEqual(replayEnd)
        expect(replica.raft.snapshotIndex()).toBeGreaterThanOrEqual(replayEnd)
      } finally {
        await Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }),
  40_000,
)

test(
  "followers that give way to a replaying leader resume once it is gone, and one of them serves",
  () =>
    withFilledGroup(async (dirs, deadline) => {
      const network = new SimNetwork({ seed: 16 })
      const scopes = await Promise.all([1, 2, 3].map(() => Effect.runPromise(Scope.make())))
      try {
        const gates = [{ open: false }, { open: false }, { open: false }]
        const logs = [newLog(), newLog(), newLog()]
        const machines = logs.map((log, i) => counting(gates[i]!, log))
        const replicas = await Promise.all(
          [1, 2, 3].map((id) => startReplica(dirs, id, network, scopes[id - 1]!, machines[id - 1]!)),
        )
        await waitFor("a leader", () => leaderOf(replicas) !== undefined, deadline)
        const k = replicas.indexOf(leaderOf(replicas)!)
        const followers = replicas.filter((_, i) => i !== k)
        await waitFor("the leader's heartbeat", () => followers.every((r) => r.raft.leaderReplaying()), deadline)
        // The leader's replay never moves; its followers could replay, and give way.
        for (const [i, gate] of gates.entries()) if (i !== k) gate.open = true
        await Bun.sleep(300)
        expect(logs.map((l) => l.stepsAt.length)).toEqual([0, 0, 0])

        await Effect.runPromise(Scope.close(scopes[k]!, Exit.void))
        await waitFor("a leader of the two left", () => leaderOf(followers) !== undefined, deadline)
        const next = leaderOf(followers)!
        const n = replicas.indexOf(next)
        expect(await Effect.runPromise(next.read(() => machines[n]!.count()))).toBe(COMMANDS)
        console.log(`leader ${k + 1} stopped while replaying; replica ${n + 1} serves`)
      } finally {
        for (const scope of scopes) await Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }),
  40_000,
)

/**
 * Restarts the group in `dirs` with a slow apply (4 ms a command) and an instant restore: once the
 * followers hear the leader replaying, they apply nothing until it has replayed everything.
 */
const givesWayThroughout = async (dirs: readonly string[], deadline: number, seed: number): Promise<void> => {
  const network = new SimNetwork({ seed })
  const scope = await Effect.runPromise(Scope.make())
  try {
    const open = { open: true }
    // Each apply takes 4 ms: every replica's tail takes a while, its restore none.
    const machines = [1, 2, 3].map(() => {
      const machine = counting(open, newLog())
      return {
        ...machine,
        apply: (command: Uint8Array, index: number) => {
          const until = performance.now() + 4
          while (performance.now() < until) {}
          return machine.apply(command, index)
        },
        beginRestore: (snapshot: Uint8Array) => ({
          step: () => {
            machine.restore(snapshot)
            return true
          },
        }),
      }
    })
    const replicas = await Promise.all(
      [1, 2, 3].map((id) => startReplica(dirs, id, network, scope, machines[id - 1]!, 64 * 1024 * 1024)),
    )
    await waitFor("a leader", () => leaderOf(replicas) !== undefined, deadline)
    const leader = leaderOf(replicas)!
    const followers = replicas.filter((r) => r !== leader)
    // (Applied whole in Raft's loop, the tails held the thread until every replay was over, and
    // no follower heard a leader still replaying.)
    await waitFor(
      "the leader's heartbeat",
      () => followers.every((r) => r.raft.leaderReplaying()),
      Math.min(deadline, Date.now() + 10_000),
    )
    const heard = followers.map((r) => r.appliedIndex())
    const replayEnd = leader.raft.status().commitIndex
    // Looked at while the leader has not replayed everything (all replicas share this thread, so
    // no heartbeat saying otherwise can have left it): the followers' applied indexes stay put.
    let seen = heard
    await waitFor(
      "the leader's replay",
      () => {
        if (leader.appliedIndex() >= replayEnd) return true
        seen = followers.map((r) => r.appliedIndex())
        return false
      },
      deadline,
    )
    console.log(
      `followers applied ${heard.join(", ")} when they heard the leader, ${seen.join(", ")} just before it had replayed through ${replayEnd}`,
    )
    expect(seen).toEqual(heard)
    expect(heard.some((applied) => applied < replayEnd)).toBe(true)
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** Commands that make a tail of 3 MiB: Raft hands a restart's committed entries over 1 MiB per Ready. */
const longTail = { commands: 96, commandBytes: 32 * 1024, budget: 64 * 1024 * 1024 } as const

test(
  "a replica whose tail comes in several Readies replays all of it through the replay, giving way to a replaying leader throughout",
  () =>
    withFilledGroup(async (dirs, deadline) => {
      await writeAndStop(dirs, deadline, { seed: 17, ...longTail })
      await givesWayThroughout(dirs, deadline, 18)
    }),
  60_000,
)

test("a replica with no snapshot yet replays its log the same way, giving way to a replaying leader", async () => {
  const root = mkdtempSync(join(tmpdir(), "kv-rsm-startup-"))
  const dirs = [1, 2, 3].map((k) => join(root, `replica-${k}`))
  const deadline = Date.now() + 45_000
  try {
    await writeAndStop(dirs, deadline, { seed: 19, ...longTail })
    await givesWayThroughout(dirs, deadline, 20)
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}, 60_000)
