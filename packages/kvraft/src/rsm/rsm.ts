import {
  type ApplyEvent,
  type Entry,
  exitOnFatal,
  makeRaftNode,
  type NodeStopped,
  type NotLeader,
  ProposalTooLarge,
  type RaftNodeConfig,
  type RaftNodeShape,
  type Snapshot,
  type Storage,
  type StorageCorrupt,
} from "@kv/raft"
import { RpcNode } from "@kv/rpc"
import { Clock, Duration, Effect, Latch, type Scope } from "effect"
import { monotonicMs } from "../commandClock.ts"
import { serveMemberAdmin } from "../members/admin.ts"
import { WrongLeader } from "./errors.ts"
import { heldDataEntry, MemberRecord, type MemberRecordView, namedEntry, RECORD_MARK } from "./memberRecord.ts"
import { GIVE_WAY_POLL_MS, StartupReplay } from "./startupReplay.ts"
import type { ReplicatedStateMachine, SnapshotInProgress } from "./stateMachine.ts"

export interface RsmOptions<R> {
  readonly raft: Omit<RaftNodeConfig, "apply" | "serviceReplaying" | "serviceApplied">
  readonly stateMachine: ReplicatedStateMachine<R>
  /** Snapshot once persisted Raft state reaches this many bytes; undefined or <= 0 never snapshots. */
  readonly maxRaftStateBytes?: number | undefined
  /** How long a submitted command may wait to be applied before the caller is told WrongLeader. */
  readonly applyTimeoutMs?: number
  /** How long a read may wait for leadership to be confirmed. */
  readonly readTimeoutMs?: number
}

/** How a submitted command or a read ended, for callers that take a callback. */
export type RsmOutcome<A, E = WrongLeader> =
  | { readonly ok: true; readonly value: A }
  | { readonly ok: false; readonly error: E }

/** Why a submitted command was not applied: retry elsewhere (WrongLeader), or never as it is. */
export type SubmitError = WrongLeader | ProposalTooLarge

export interface RsmShape<R> {
  readonly raft: RaftNodeShape
  /** Largest command `submit` accepts (the Raft node's maxEntryBytes); larger fails ProposalTooLarge. */
  readonly maxCommandBytes: number
  /** Proposes a command and waits until it is applied at its index in the same term; then its result. */
  submit(command: Uint8Array): Effect.Effect<R, SubmitError>
  /** Runs `read` against state that reflects every write completed before the call (ReadIndex, no log write). */
  read<A>(read: () => A): Effect.Effect<A, WrongLeader>
  /** `submit` with a callback (called once): no fiber per command, for a server's request path. */
  submitWith(command: Uint8Array, done: (outcome: RsmOutcome<R, SubmitError>) => void): void
  /** `read` with a callback (called once); `read` runs inside the apply loop and must not throw. */
  readWith<A>(read: () => A, done: (outcome: RsmOutcome<A>) => void): void
  appliedIndex(): number
  /**
   * Done once this replica has applied the log it started with (its stored snapshot and the
   * committed tail after it), at once for an empty one: the end of a restart's replay.
   */
  readonly replayed: Effect.Effect<void>
  /**
   * For a replica about to stop: finishes the replay of its start if one is under way, then, when
   * its log holds at least a quarter of the snapshot budget past its snapshot, takes a snapshot of
   * everything applied and waits until it is on disk and the log compacted to it, so the next
   * start restores it instead of replaying that tail. The index it
   * snapshotted, or undefined when the tail was too short for one (or snapshots are off).
   */
  readonly snapshotBeforeStop: Effect.Effect<number | undefined>
  /** Ids the group has ever named in a configuration, and ids seen holding log entries (see memberRecord.ts). */
  readonly members: MemberRecordView
}

interface ApplyWaiter<R> {
  readonly term: number
  readonly deadline: number
  readonly done: (outcome: RsmOutcome<R, SubmitError>) => void
}

/** A read from its call until it has run (or failed); `done` guards against a second answer. */
interface PendingRead {
  readonly deadline: number
  /** Set once ReadIndex has answered: the read runs when the state machine has applied it. */
  index: number
  finished: boolean
  readonly run: () => void
  readonly fail: (error: WrongLeader) => void
}

const toWrongLeader = (error: NotLeader | NodeStopped): WrongLeader =>
  new WrongLeader({ leaderHint: error._tag === "NotLeader" ? error.leaderHint : 0 })

/** How often a follower with no command or read waiting sweeps for deadlines (a leader: every 100 ms). */
const IDLE_FOLLOWER_SWEEP_MS = 1_000

/** A leader's record that a member holds data is proposed again after this long if it has not been applied. */
const HELD_RETRY_MS = 2_000

/** What a waiter on a record entry is given: it only learns that the entry was applied. */
const RECORDED: unknown = Symbol("recorded")

const toEffect = <A, E>(outcome: RsmOutcome<A, E>): Effect.Effect<A, E> =>
  outcome.ok ? Effect.succeed(outcome.value) : Effect.fail(outcome.error)

/**
 * The replicated-state-machine framework: a Raft node, a state machine, the waiters of submitted
 * commands and reads, and snapshotting when the log grows past its budget. Waiters are plain
 * callbacks in maps swept by one timer, so a command or a read costs no fiber of its own.
 */
export const makeRsm = <R>(
  options: RsmOptions<R>,
): Effect.Effect<RsmShape<R>, StorageCorrupt, Scope.Scope | RpcNode | Storage> =>
  Effect.gen(function* () {
    const clock = yield* Clock.Clock
    const sm = options.stateMachine
    const applyTimeoutMs = options.applyTimeoutMs ?? 2_000
    const readTimeoutMs = options.readTimeoutMs ?? 2_000
    const maxRaftStateBytes = options.maxRaftStateBytes ?? 0
    const waiters = new Map<number, ApplyWaiter<R>>()
    /** Reads whose index is known but not yet applied, in index order. */
    let applyingReads: PendingRead[] = []
    /** Every read not yet finished, for the deadline sweep. */
    const pendingReads = new Set<PendingRead>()
    let lastApplied = 0
    let lastSnapshot = 0
    /**
     * Where the log this replica restarted with was committed to: until it has applied that far it
     * is replaying its own tail, handed a Ready (1 MiB) at a time. A snapshot begun at the first
     * Ready would hold the state a few entries past the snapshot just restored (leaving most of the
     * tail in the log, for the next restart to replay again) and share the CPU with the rest of the
     * replay; it waits for the replay's end instead and covers the whole tail. Set once the node
     * exists, before its loop applies anything.
     */
    let replayEnd = 0
    const replaying = (): boolean => lastApplied < replayEnd
    const replayDone = Latch.makeUnsafe(false)
    let replayOver = false
    const noteReplayEnd = () => {
      if (replayOver || raft === undefined || replaying()) return
      replayOver = true
      replayDone.openUnsafe()
    }
    /**
     * The snapshot being taken a slice at a time, of the state applied through `index`; the
     * snapshot fiber steps it between turns of the event loop and hands the bytes to Raft.
     */
    let snapshotting: { readonly index: number; readonly job: SnapshotInProgress } | undefined
    const snapshotWake = Latch.makeUnsafe(false)
    // Assigned right after the node is created; apply callbacks only start once the loop runs.
    let raft: RaftNodeShape | undefined
    const record = new MemberRecord()
    /** When this leader last proposed that a member holds data, by id: such a proposal is retried, not repeated. */
    const heldProposedAt = new Map<number, number>()

    const wrongLeader = () => new WrongLeader({ leaderHint: raft?.leader() ?? 0 })

    const failWaiter = (index: number, waiter: ApplyWaiter<R>) => {
      waiters.delete(index)
      waiter.done({ ok: false, error: wrongLeader() })
    }

    const releaseReads = () => {
      if (applyingReads.length === 0 || applyingReads[0]!.index > lastApplied) return
      let n = 0
      while (n < applyingReads.length && applyingReads[n]!.index <= lastApplied) n++
      const ready = applyingReads.slice(0, n)
      applyingReads = applyingReads.slice(n)
      for (const r of ready) r.run()
    }

    const applySnapshot = (snapshot: Snapshot) => {
      sm.restore(record.unwrapSnapshot(snapshot.data))
      if (snapshot.membership !== undefined) record.noteConfiguration(snapshot.membership.members)
      lastApplied = snapshot.index
      lastSnapshot = snapshot.index
      // The state it was taking a snapshot of is gone: the installed snapshot is newer.
      snapshotting = undefined
      // Commands waiting at covered indexes were applied by others; their results are not known here.
      for (const [index, waiter] of waiters) if (index <= lastApplied) failWaiter(index, waiter)
      releaseReads()
      noteReplayEnd()
    }

    const applyEntries = (entries: readonly Entry[]) => {
      for (const entry of entries) {
        if (entry.config !== undefined) record.noteConfiguration(entry.config.members)
        let result: R | undefined
        if (entry.data.length === 0) result = undefined
        else if (entry.data[0] === RECORD_MARK) {
          record.applyEntry(entry.data)
          // Only the member admin waits on record entries, for their being applied, not a result.
          result = RECORDED as R
        } else result = sm.apply(entry.data, entry.index)
        lastApplied = entry.index
        // The replay's last entry: begun between it and what the new term committed after it, the
        // snapshot covers exactly the tail this replica had (a peer that stopped with the same
        // log can still be sent entries from here, not the whole snapshot).
        if (entry.index === replayEnd) maybeBeginSnapshot()
        const waiter = waiters.get(entry.index)
        if (waiter === undefined) continue
        waiters.delete(entry.index)
        // A different term at our index means our command was overwritten by another leader's.
        if (result !== undefined && entry.term === waiter.term) waiter.done({ ok: true, value: result })
        else failWaiter(entry.index, waiter)
      }
      releaseReads()
      maybeBeginSnapshot()
      noteReplayEnd()
    }

    /** A stop is under way: the replay no longer gives way (see snapshotBeforeStop). */
    let stopping = false
    /** The stored snapshot and the entries after it, while they are restored and applied in slices. */
    let replay: StartupReplay | undefined

    const apply = (event: ApplyEvent) => {
      if (event.type === "snapshot") {
        const { snapshot } = event
        // The stored snapshot, handed over while the node is made: restored a slice at a time by
        // the replay fiber where the state machine can, so that the node answers meanwhile.
        if (raft === undefined && sm.beginRestore !== undefined) {
          replay = new StartupReplay(sm.beginRestore(record.unwrapSnapshot(snapshot.data)), snapshot.index)
          if (snapshot.membership !== undefined) record.noteConfiguration(snapshot.membership.members)
          lastSnapshot = snapshot.index
          return
        }
        replay = undefined
        replayWake.openUnsafe()
        applySnapshot(snapshot)
        return
      }
      if (replay !== undefined) {
        replay.push(event.entries)
        replayWake.openUnsafe()
      } else applyEntries(event.entries)
    }

    /**
     * One slice of the replay: "done" once it is over, "waiting" while committed entries of the
     * tail are still to be handed over. Raft hands them over a Ready at a time; a replay that
     * ended whenever it had applied what it was given (a snapshot restored at once, then the first
     * Ready's entries) left the rest of the tail to Raft's loop, applied whole and without giving
     * way to a replaying leader.
     */
    const stepReplay = (): "more" | "waiting" | "done" => {
      if (replay === undefined) return "done"
      if (replay.step(applyEntries) === "restored") {
        lastApplied = replay.snapshotIndex
        releaseReads()
        noteReplayEnd()
      }
      if (replay.pending) return "more"
      if (replaying()) return "waiting"
      replay = undefined
      return "done"
    }
    /** Opened when the replay is handed entries (or ended by an installed snapshot). */
    const replayWake = Latch.makeUnsafe(false)

    /** Begins a snapshot of what is applied now, when the log is over the budget and none is under way. */
    const maybeBeginSnapshot = () => {
      if (
        raft !== undefined &&
        snapshotting === undefined &&
        maxRaftStateBytes > 0 &&
        lastApplied > lastSnapshot &&
        raft.raftStateBytes() >= maxRaftStateBytes &&
        // The last one may still wait for the local write of what it covers (applied entries can
        // run ahead of this disk); until it is compacted into, the log has not shrunk.
        raft.snapshotIndex() >= lastSnapshot &&
        !replaying()
      ) {
        // Begun here, between two applies, so it holds exactly what was applied through lastApplied;
        // the rest (most of a large state's snapshot) runs in slices, the replica serving between them.
        lastSnapshot = lastApplied
        snapshotting = { index: lastApplied, job: record.snapshotJobOf(sm) }
        snapshotWake.openUnsafe()
      }
    }

    /** One slice of the snapshot being taken; the bytes go to Raft once done. */
    const stepSnapshot = () => {
      if (snapshotting === undefined || raft === undefined) return
      const { index, job } = snapshotting
      const bytes = job.step()
      if (bytes === undefined) return
      snapshotting = undefined
      Effect.runSync(raft.snapshot(index, bytes))
    }

    /** The log this replica restarted with past its snapshot, entries and bytes: what it replays. */
    let tail = { entries: 0, bytes: 0 }
    const node = yield* makeRaftNode({
      ...options.raft,
      apply,
      serviceReplaying: replaying,
      // Pro rata of the tail's bytes: entries vary in size, and the log keeps no running total.
      serviceBacklogBytes: () =>
        replaying() && tail.entries > 0
          ? (tail.bytes * (replayEnd - Math.max(lastApplied, lastSnapshot))) / tail.entries
          : 0,
      serviceApplied: () => lastApplied,
    })
    raft = node
    replayEnd = node.status().commitIndex
    tail = { entries: Math.max(0, replayEnd - lastSnapshot), bytes: node.raftStateBytes() }
    // No snapshot yet (a log under the budget): the log alone is replayed the same way, in slices and
    // giving way to a replaying leader, rather than whole inside Raft's loop.
    if (replay === undefined && replaying() && sm.beginRestore !== undefined) replay = new StartupReplay(undefined, 0)
    noteReplayEnd()
    if (replay !== undefined) {
      const fatal = options.raft.onFatal ?? exitOnFatal
      // The group waits for its leader's replay, not this one's: while the leader says it replays
      // (the group restarted together), this replica leaves it the cores they may share.
      const givesWay = () => !stopping && node.leaderReplaying()
      yield* Effect.forkScoped(
        Effect.gen(function* () {
          for (;;) {
            if (givesWay()) {
              yield* Effect.sleep(Duration.millis(GIVE_WAY_POLL_MS))
              continue
            }
            let outcome: "more" | "waiting" | "done"
            try {
              outcome = stepReplay()
            } catch (error) {
              // As an apply that throws in Raft's loop: the replica stops (a corrupt snapshot, a defect).
              fatal(error)
              return
            }
            if (outcome === "done") return
            if (outcome === "waiting") {
              replayWake.closeUnsafe()
              yield* replayWake.await
            } else yield* Effect.yieldNow
          }
        }),
      )
    }

    const snapshotBeforeStop = Effect.gen(function* () {
      // A replay under way is finished first, no longer giving way to a leader: a snapshot of part
      // of it would leave the rest of the tail to replay again at the next start.
      stopping = true
      yield* replayDone.await
      // A snapshot under way (taken, or still being written) is finished first: it covers part of
      // the tail, and only one runs at a time.
      while (snapshotting !== undefined || node.snapshotIndex() < lastSnapshot) yield* Effect.sleep(Duration.millis(5))
      if (
        maxRaftStateBytes === 0 ||
        lastApplied <= node.snapshotIndex() ||
        node.raftStateBytes() < maxRaftStateBytes / 4
      ) {
        return undefined
      }
      const index = lastApplied
      lastSnapshot = index
      snapshotting = { index, job: record.snapshotJobOf(sm) }
      snapshotWake.openUnsafe()
      // Compacted to it (or past it, by a snapshot a leader installed meanwhile).
      while (node.snapshotIndex() < index) yield* Effect.sleep(Duration.millis(5))
      return index
    })

    /**
     * The leader records which members have acknowledged log entries, so a replica that comes back
     * under such an id with an empty data directory can be told it lost them (see serve.ts).
     */
    const recordHeldData = (now: number) => {
      const s = node.status()
      if (s.role !== "leader") {
        heldProposedAt.clear()
        return
      }
      const due = s.members.filter(
        (m) =>
          m.match > 0 &&
          !record.heldData.has(m.id) &&
          now - (heldProposedAt.get(m.id) ?? Number.NEGATIVE_INFINITY) >= HELD_RETRY_MS,
      )
      if (due.length === 0) return
      for (const m of due) heldProposedAt.set(m.id, now)
      node.proposeUnsafe(heldDataEntry(due.map((m) => m.id)))
    }

    // Commands whose entry never commits (lost leadership in a partition) and reads that cannot
    // confirm leadership must not wait forever.
    yield* Effect.forkScoped(
      Effect.gen(function* () {
        while (true) {
          yield* Effect.sleep(Duration.millis(Math.min(100, applyTimeoutMs, readTimeoutMs)))
          const now = monotonicMs(clock)
          for (const [index, waiter] of waiters) if (waiter.deadline <= now) failWaiter(index, waiter)
          for (const read of pendingReads) if (read.deadline <= now) read.fail(wrongLeader())
          recordHeldData(now)
          // A follower with nothing waiting has nothing to sweep until it leads; it still looks once
          // a second, for a command proposed just before its leadership was lost.
          if (waiters.size === 0 && pendingReads.size === 0 && node.status().role !== "leader") {
            yield* Effect.timeoutOption(node.leading, IDLE_FOLLOWER_SWEEP_MS)
          }
        }
      }),
    )
    // Snapshots in slices: each slice is followed by a turn of the event loop, so datagrams, client
    // requests and Raft's own loop run between slices (a 1M-key snapshot taken at once held the
    // loop 0.7-1.8 s, past the election timeout).
    yield* Effect.forkScoped(
      Effect.gen(function* () {
        while (true) {
          yield* snapshotWake.await
          snapshotWake.closeUnsafe()
          while (snapshotting !== undefined) {
            stepSnapshot()
            yield* Effect.yieldNow
          }
        }
      }).pipe(Effect.tapCause((cause) => Effect.logError("rsm: taking a snapshot failed", cause))),
    )
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const [index, waiter] of waiters) failWaiter(index, waiter)
        for (const read of pendingReads) read.fail(wrongLeader())
      }),
    )

    const submitWith = (command: Uint8Array, done: (outcome: RsmOutcome<R, SubmitError>) => void): void => {
      const proposed = node.proposeUnsafe(command)
      if (proposed instanceof ProposalTooLarge) {
        done({ ok: false, error: proposed })
        return
      }
      if (!("index" in proposed)) {
        done({ ok: false, error: new WrongLeader({ leaderHint: proposed.leaderHint }) })
        return
      }
      const existing = waiters.get(proposed.index)
      if (existing !== undefined) failWaiter(proposed.index, existing)
      waiters.set(proposed.index, { term: proposed.term, deadline: monotonicMs(clock) + applyTimeoutMs, done })
    }

    const readWith = <A>(f: () => A, done: (outcome: RsmOutcome<A>) => void): void => {
      const read: PendingRead = {
        deadline: monotonicMs(clock) + readTimeoutMs,
        index: 0,
        finished: false,
        run: () => {
          if (read.finished) return
          read.finished = true
          pendingReads.delete(read)
          done({ ok: true, value: f() })
        },
        fail: (error) => {
          if (read.finished) return
          read.finished = true
          pendingReads.delete(read)
          applyingReads = applyingReads.filter((r) => r !== read)
          done({ ok: false, error })
        },
      }
      pendingReads.add(read)
      node.readIndexWith((outcome) => {
        if (typeof outcome !== "number") {
          read.fail(toWrongLeader(outcome))
          return
        }
        if (read.finished) return
        if (outcome <= lastApplied) {
          read.run()
          return
        }
        read.index = outcome
        // Rounds complete in order, so a new read almost always goes last.
        let at = applyingReads.length
        while (at > 0 && applyingReads[at - 1]!.index > outcome) at--
        applyingReads.splice(at, 0, read)
      })
    }

    yield* serveMemberAdmin(yield* RpcNode, {
      raft: node,
      record,
      recordNamed: (ids) =>
        Effect.callback<void, WrongLeader>((resume) =>
          submitWith(namedEntry(ids), (outcome) =>
            resume(
              outcome.ok
                ? Effect.void
                : Effect.fail(outcome.error._tag === "WrongLeader" ? outcome.error : wrongLeader()),
            ),
          ),
        ),
      bootstrapIds: options.raft.join === true ? [] : Object.keys(options.raft.peers).map(Number),
      read: (f) =>
        Effect.callback((resume) =>
          readWith(
            () => undefined,
            (outcome) => resume(outcome.ok ? Effect.sync(f) : Effect.fail(outcome.error)),
          ),
        ),
    })

    return {
      raft: node,
      members: record,
      maxCommandBytes: node.maxEntryBytes,
      submit: (command) => Effect.callback((resume) => submitWith(command, (outcome) => resume(toEffect(outcome)))),
      // `f` runs in the caller's fiber, so a defect in it is the caller's, not the apply loop's.
      read: <A>(f: () => A) =>
        Effect.callback<A, WrongLeader>((resume) =>
          readWith(
            () => undefined,
            (outcome) => resume(outcome.ok ? Effect.sync(f) : Effect.fail(outcome.error)),
          ),
        ),
      submitWith,
      readWith,
      appliedIndex: () => lastApplied,
      replayed: replayDone.await,
      snapshotBeforeStop,
    }
  })
