import {
  type ApplyEvent,
  makeRaftNode,
  type NodeStopped,
  type NotLeader,
  type RaftNodeConfig,
  type RaftNodeShape,
  type Storage,
  type StorageCorrupt,
} from "@kv/raft"
import type { RpcNode } from "@kv/rpc"
import { Deferred, Duration, Effect, type Scope } from "effect"
import { WrongLeader } from "./errors.ts"
import type { ReplicatedStateMachine } from "./stateMachine.ts"

export interface RsmOptions<R> {
  readonly raft: Omit<RaftNodeConfig, "apply">
  readonly stateMachine: ReplicatedStateMachine<R>
  /** Snapshot once persisted Raft state reaches this many bytes; undefined or <= 0 never snapshots. */
  readonly maxRaftStateBytes?: number | undefined
  /** How long a submitted command may wait to be applied before the caller is told WrongLeader. */
  readonly applyTimeoutMs?: number
  /** How long a read may wait for leadership to be confirmed. */
  readonly readTimeoutMs?: number
}

export interface RsmShape<R> {
  readonly raft: RaftNodeShape
  /** Proposes a command and waits until it is applied at its index in the same term; then its result. */
  submit(command: Uint8Array): Effect.Effect<R, WrongLeader>
  /** Runs `read` against state that reflects every write completed before the call (ReadIndex, no log write). */
  read<A>(read: () => A): Effect.Effect<A, WrongLeader>
  appliedIndex(): number
}

interface ApplyWaiter<R> {
  readonly term: number
  readonly deadline: number
  readonly deferred: Deferred.Deferred<R, WrongLeader>
}

interface ReadWaiter {
  readonly index: number
  readonly resume: () => void
}

const toWrongLeader = (error: NotLeader | NodeStopped): WrongLeader =>
  new WrongLeader({ leaderHint: error._tag === "NotLeader" ? error.leaderHint : 0 })

/**
 * The replicated-state-machine framework: a Raft node, a state machine, the waiters of submitted
 * commands and reads, and snapshotting when the log grows past its budget.
 */
export const makeRsm = <R>(
  options: RsmOptions<R>,
): Effect.Effect<RsmShape<R>, StorageCorrupt, Scope.Scope | RpcNode | Storage> =>
  Effect.gen(function* () {
    const sm = options.stateMachine
    const applyTimeoutMs = options.applyTimeoutMs ?? 2_000
    const readTimeoutMs = options.readTimeoutMs ?? 2_000
    const maxRaftStateBytes = options.maxRaftStateBytes ?? 0
    const waiters = new Map<number, ApplyWaiter<R>>()
    let reads: ReadWaiter[] = []
    let lastApplied = 0
    let lastSnapshot = 0
    // Assigned right after the node is created; apply callbacks only start once the loop runs.
    let raft: RaftNodeShape | undefined

    const failWaiter = (index: number, waiter: ApplyWaiter<R>) => {
      waiters.delete(index)
      Deferred.doneUnsafe(waiter.deferred, Effect.fail(new WrongLeader({ leaderHint: raft?.status().leader ?? 0 })))
    }

    const releaseReads = () => {
      if (reads.length === 0 || reads[0]!.index > lastApplied) return
      const ready = reads.filter((r) => r.index <= lastApplied)
      reads = reads.filter((r) => r.index > lastApplied)
      for (const r of ready) r.resume()
    }

    const apply = (event: ApplyEvent) => {
      if (event.type === "snapshot") {
        sm.restore(event.snapshot.data)
        lastApplied = event.snapshot.index
        lastSnapshot = event.snapshot.index
        // Commands waiting at covered indexes were applied by others; their results are not known here.
        for (const [index, waiter] of waiters) if (index <= lastApplied) failWaiter(index, waiter)
        releaseReads()
        return
      }
      for (const entry of event.entries) {
        const result = entry.data.length === 0 ? undefined : sm.apply(entry.data, entry.index)
        lastApplied = entry.index
        const waiter = waiters.get(entry.index)
        if (waiter === undefined) continue
        waiters.delete(entry.index)
        // A different term at our index means our command was overwritten by another leader's.
        if (result !== undefined && entry.term === waiter.term)
          Deferred.doneUnsafe(waiter.deferred, Effect.succeed(result))
        else failWaiter(entry.index, waiter)
      }
      releaseReads()
      if (
        raft !== undefined &&
        maxRaftStateBytes > 0 &&
        lastApplied > lastSnapshot &&
        raft.raftStateBytes() >= maxRaftStateBytes
      ) {
        lastSnapshot = lastApplied
        Effect.runSync(raft.snapshot(lastApplied, sm.snapshot()))
      }
    }

    const node = yield* makeRaftNode({ ...options.raft, apply })
    raft = node

    // Commands whose entry never commits (lost leadership in a partition) must not wait forever.
    yield* Effect.forkScoped(
      Effect.gen(function* () {
        while (true) {
          yield* Effect.sleep(Duration.millis(Math.min(100, applyTimeoutMs)))
          const now = Date.now()
          for (const [index, waiter] of waiters) if (waiter.deadline <= now) failWaiter(index, waiter)
        }
      }),
    )
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const [index, waiter] of waiters) failWaiter(index, waiter)
      }),
    )

    const submit = (command: Uint8Array): Effect.Effect<R, WrongLeader> =>
      Effect.suspend(() => {
        const proposed = node.proposeUnsafe(command)
        if (!("index" in proposed)) return Effect.fail(new WrongLeader({ leaderHint: proposed.leaderHint }))
        const existing = waiters.get(proposed.index)
        if (existing !== undefined) failWaiter(proposed.index, existing)
        const deferred = Deferred.makeUnsafe<R, WrongLeader>()
        waiters.set(proposed.index, { term: proposed.term, deadline: Date.now() + applyTimeoutMs, deferred })
        return Deferred.await(deferred)
      })

    const read = <A>(f: () => A): Effect.Effect<A, WrongLeader> =>
      node.readIndex().pipe(
        Effect.mapError(toWrongLeader),
        Effect.flatMap((index) =>
          index <= lastApplied
            ? Effect.sync(f)
            : Effect.callback<A>((resume) => {
                const waiter = { index, resume: () => resume(Effect.sync(f)) }
                const at = reads.findIndex((r) => r.index > index)
                if (at === -1) reads.push(waiter)
                else reads.splice(at, 0, waiter)
                return Effect.sync(() => {
                  reads = reads.filter((r) => r !== waiter)
                })
              }),
        ),
        Effect.timeoutOrElse({
          duration: Duration.millis(readTimeoutMs),
          orElse: () => Effect.fail(new WrongLeader({ leaderHint: node.status().leader })),
        }),
      )

    return { raft: node, submit, read, appliedIndex: () => lastApplied }
  })
