import { normalizeAddress, RpcNode } from "@kv/rpc"
import { Cause, Clock, Context, Effect, Exit, Latch, Layer, Option, Random, Scheduler, type Scope } from "effect"
import {
  type ChangeRefusal,
  createRaft,
  type Entry,
  type LogIndex,
  type Membership,
  type MembershipChange,
  type Message,
  maxEntryBytesFor,
  messageWithinBounds,
  type NodeId,
  type RaftConfig,
  type ReadState,
  type Ready,
  type Role,
  type Snapshot,
  type Term,
} from "../core/index.ts"
import type { StorageCorrupt } from "../storage/errors.ts"
import { durableOnReturn, Storage } from "../storage/index.ts"
import { FRAME_HEADER_BYTES, MAX_RECORD_BODY_BYTES } from "../storage/walRecord.ts"
import { startAddressFinder } from "./addressFinder.ts"
import {
  AlreadyMember,
  ChangeInProgress,
  LastVoter,
  type MembershipChangeError,
  NodeStopped,
  NotLeader,
  ProposalTooLarge,
  UnknownMember,
} from "./errors.ts"
import { isFromPeer, PeerDirectory, resolvePeerSources } from "./peerSources.ts"
import { PreferredLeaderWatch } from "./preferredLeader.ts"
import { makeReadyRounds, ReadyRounds, type RoundMember } from "./readyRounds.ts"
import { RaftStatusMethod } from "./statusMethod.ts"
import { decodeMessages, encodeMessages, estimateMessageBytes, isResponse, RAFT_CHANNEL } from "./wire.ts"
import { writeHintFor } from "./writeHint.ts"

/** What the service applies, in log order: committed entries, or a snapshot that replaces its state. */
export type ApplyEvent =
  | { readonly type: "entries"; readonly entries: readonly Entry[] }
  | { readonly type: "snapshot"; readonly snapshot: Snapshot }

/** Called once with the read index, or with why there is none. */
export type ReadIndexCallback = (outcome: LogIndex | NotLeader | NodeStopped) => void

export interface RaftNodeConfig {
  readonly id: NodeId
  /**
   * The bootstrap members' addresses by id (cluster.toml), this node's included: every one a voter
   * until the log or a snapshot says otherwise. After that the membership is the log's, and the
   * addresses of members added later come with the configuration entries that add them.
   */
  readonly peers: Readonly<Record<number, string>>
  /**
   * This node joins an existing group (etcd's `--initial-cluster-state existing`): with empty
   * storage it does not bootstrap from `peers` but waits for the leader, which replicates the log
   * (or a snapshot) to it once it has been added as a member. `peers` then only says where the
   * group's members are, so their messages are believed. Default false.
   */
  readonly join?: boolean
  /** Name of this node's storage in the Storage service (a directory for file storage). */
  readonly storageName?: string
  readonly tickMs?: number
  /** Minimum election timeout in ticks; the actual one is randomized in [n, 2n). */
  readonly electionTicks?: number
  readonly heartbeatTicks?: number
  readonly seed?: number
  readonly maxInflightMessages?: number
  readonly maxAppendBytes?: number
  readonly snapshotChunkBytes?: number
  /** Largest snapshot a follower accepts and a leader sends. Default 1 GiB; the same on every replica. */
  readonly maxSnapshotBytes?: number
  /**
   * How long a leader keeps the entries a snapshot covers while an active follower has not yet
   * acknowledged them (see `compactPending`). Default 1000 ms.
   */
  readonly snapshotCatchUpMs?: number
  /**
   * The address ("host:port") of the member that should lead the group whenever it is up and holds
   * the log: a leader that is not it hands leadership over once that member has settled
   * (preferredLeader.ts). An address rather than an id, so a member replaced under a new id at the
   * same address is preferred in its turn. Unset: any member.
   */
  readonly preferredLeader?: string | undefined
  /**
   * Called when the node cannot go on (its storage failed, or `apply` threw); the loop stops.
   * Default: print the error and exit the process with code 70, so a supervisor restarts it.
   */
  readonly onFatal?: (error: unknown) => void
  /**
   * Observes the duration of every durable write (one per Ready), for metrics: from the write until
   * the loop resumes after its flush, so a busy event loop's delay in noticing the flush counts too.
   */
  readonly onFsync?: (seconds: number) => void
  /**
   * Called synchronously, in order, for every committed entry and installed snapshot (including the
   * stored snapshot at startup). The service must not block here.
   */
  readonly apply: (event: ApplyEvent) => void
  /**
   * Whether the service is still applying the log this node restarted with: while it leads, its
   * heartbeats say so, and its followers' `leaderReplaying()` is true.
   */
  readonly serviceReplaying?: () => boolean
  /** Bytes of log the service still has to apply before it serves (RaftConfig.serviceBacklogBytes). */
  readonly serviceBacklogBytes?: () => number
  /**
   * The last index the service has applied, when it applies some of what it is handed later (a
   * restart's replay in slices): status() reports it rather than what was handed over.
   */
  readonly serviceApplied?: () => LogIndex
}

export interface RaftStatus {
  readonly id: NodeId
  readonly term: Term
  readonly role: Role
  readonly leader: NodeId | 0
  readonly commitIndex: LogIndex
  readonly appliedIndex: LogIndex
  readonly lastIndex: LogIndex
  readonly snapshotIndex: LogIndex
  readonly raftStateBytes: number
  readonly snapshotBytes: number
  /**
   * Leader only: bytes of its snapshot when a lagging follower needs it and it is past
   * maxSnapshotBytes, which every follower refuses (that follower cannot catch up); else 0.
   */
  readonly oversizedSnapshotBytes: number
  /** This node in its own membership: "removed" nodes no longer campaign; "joining" ones wait for the leader. */
  readonly member: "voter" | "learner" | "removed" | "joining"
  /** Index of the configuration entry in force (0: the snapshot's or the bootstrap peers). */
  readonly membershipIndex: LogIndex
  /** The latest configuration in this node's log, committed or not, by id. */
  readonly members: readonly MemberStatus[]
}

export interface MemberStatus {
  readonly id: NodeId
  /** "" when this node does not know it. */
  readonly address: string
  readonly role: "leader" | "voter" | "learner"
  /** Leader only: the highest index known replicated on the member (its own last index for itself); -1 elsewhere. */
  readonly match: LogIndex
  /** Leader only: entries the member is behind the leader's log; -1 elsewhere. */
  readonly lag: number
}

/** A membership change that has committed. */
export interface MembershipChangeResult {
  readonly index: LogIndex
  readonly term: Term
  readonly membership: Membership
}

export interface ProposeResult {
  readonly index: LogIndex
  readonly term: Term
}

export interface RaftNodeShape {
  readonly id: NodeId
  /**
   * Waits until this node leads (at once while it does): background work only a leader does
   * sleeps on it instead of waking on a timer to find it has nothing to do.
   */
  readonly leading: Effect.Effect<void>
  /**
   * Largest command `propose` accepts: what one Raft message carries (the transport's largest
   * message less the Raft envelope), and within one WAL record. Servers can refuse larger
   * requests early with their own error.
   */
  readonly maxEntryBytes: number
  /**
   * Appends a command to the log if this node leads; resolves once it is in the leader's log (not
   * committed). ProposalTooLarge past maxEntryBytes.
   */
  propose(data: Uint8Array): Effect.Effect<ProposeResult, NotLeader | NodeStopped | ProposalTooLarge>
  /** The same, synchronously, for callers that batch on their own hot path. */
  proposeUnsafe(data: Uint8Array): ProposeResult | NotLeader | ProposalTooLarge
  /**
   * ReadIndex (§6.4): resolves with a log index such that a read served once the state machine has
   * applied it is linearizable. Concurrent calls share one round of heartbeats.
   */
  readIndex(): Effect.Effect<LogIndex, NotLeader | NodeStopped>
  /** The same with a callback, called once, for servers answering many reads without a fiber each. */
  readIndexWith(done: ReadIndexCallback): void
  /**
   * The service's snapshot covering the log up to `index` (applied): persisted, then the log before
   * it is dropped. May be called from the apply callback; it takes effect after the current batch.
   */
  snapshot(index: LogIndex, data: Uint8Array): Effect.Effect<void>
  /**
   * Membership changes, one at a time (thesis §4.3): each appends a configuration entry if this node
   * leads and resolves once that entry has committed (the new membership is then the group's). Fails
   * with NotLeader if this node does not lead, or loses leadership before the entry commits (the
   * change may still take effect: read the membership again); ChangeInProgress while another change
   * (or this leader's first entry) is uncommitted. A leader that removes itself hands leadership to
   * the most up-to-date voter once the change commits, and steps down.
   */
  addLearner(id: NodeId, address: string): Effect.Effect<MembershipChangeResult, MembershipChangeError>
  /** Makes a learner a voter (check its lag in status() first: a voter that is far behind slows commits). */
  promote(id: NodeId): Effect.Effect<MembershipChangeResult, MembershipChangeError>
  addVoter(id: NodeId, address: string): Effect.Effect<MembershipChangeResult, MembershipChangeError>
  removeMember(id: NodeId): Effect.Effect<MembershipChangeResult, MembershipChangeError>
  /** Hands leadership to `to` (or the most up-to-date follower). Resolves once requested. */
  transferLeadership(to?: NodeId): Effect.Effect<void, NotLeader>
  status(): RaftStatus
  /**
   * Totals since start: Raft messages sent (requests exclude responses: the lab counts RPC calls),
   * proposals accepted, durable writes.
   */
  counters(): {
    readonly messagesSent: number
    readonly requestsSent: number
    readonly proposals: number
    readonly fsyncs: number
  }
  /** Bytes of persisted Raft state (hard state + log after the snapshot): the services' snapshot trigger. */
  raftStateBytes(): number
  /** The index the log was last compacted to (`status().snapshotIndex` without building the status). */
  snapshotIndex(): LogIndex
  /** This node follows a leader whose last heartbeat said its service is still replaying (`serviceReplaying`). */
  leaderReplaying(): boolean
  /**
   * The leader this node knows: its own id while it leads, 0 when it knows none
   * (`status().leader` without building the status, for checks made on every request).
   */
  leader(): NodeId | 0
}

export const raftDefaults = {
  tickMs: 10,
  electionTicks: 30,
  heartbeatTicks: 10,
  maxInflightMessages: 256,
  maxAppendBytes: 48 * 1024,
  snapshotChunkBytes: 32 * 1024,
  /** Largest snapshot a follower accepts; the same on every replica (see RaftConfig). */
  maxSnapshotBytes: 1024 * 1024 * 1024,
  snapshotCatchUpMs: 1000,
} as const

/** What a node does on a fatal error unless `onFatal` says otherwise: the process exits. */
export const exitOnFatal = (error: unknown): void => {
  console.error("raft: fatal error, stopping:", error)
  process.exit(70)
}

/** Entries a leader may hold beyond its commit index before it refuses proposals. */
const maxUncommittedEntries = 16_384

/** Target size of one datagram batch of Raft messages to a peer (below the 60 KiB datagram). */
const BATCH_BYTES = 56 * 1024

/**
 * The Effect shell around the pure core: rounds of Readies (readyRounds.ts) run inputs → core →
 * send early → write (one fsync per Ready) and apply while the disk flushes → send what waited for
 * the flush → advance. The flush runs off the event loop (unless the node has nothing to do
 * meanwhile: writeHint.ts), so inputs (peer messages, proposals, ticks) keep stepping the core
 * meanwhile, and what needs nothing unflushed is done once the event loop turns
 * (`takeDuringFlush`: entries committed meanwhile, reads confirmed, a leader's replication); what
 * they write, and every message that promises it, goes with the next Ready.
 */
export const makeRaftNode = (
  config: RaftNodeConfig,
): Effect.Effect<RaftNodeShape, StorageCorrupt, Scope.Scope | RpcNode | Storage> =>
  Effect.gen(function* () {
    const rpc = yield* RpcNode
    const storageService = yield* Storage
    const storage = yield* storageService.open(config.storageName ?? `node-${config.id}`)
    yield* Effect.addFinalizer(() => Effect.sync(() => storage.close()))
    const restored = storage.load()
    const resolved = resolvePeerSources(config.peers)
    const peerSources = new PeerDirectory(
      config.peers,
      resolved instanceof Promise ? yield* Effect.promise(() => resolved) : resolved,
    )
    // One Raft message must carry any entry, and one WAL record must hold it.
    const maxEntryBytes = Math.min(
      maxEntryBytesFor(rpc.transport.maxMessageBytes),
      MAX_RECORD_BODY_BYTES - FRAME_HEADER_BYTES - 64,
    )
    const maxSnapshotBytes = config.maxSnapshotBytes ?? raftDefaults.maxSnapshotBytes
    const peerIds = Object.keys(config.peers)
      .map(Number)
      .sort((a, b) => a - b) as NodeId[]
    const seed = config.seed ?? (yield* Random.nextIntBetween(0, 2 ** 32 - 1))
    const clock = yield* Clock.Clock
    const raftConfig: RaftConfig = {
      id: config.id,
      // A joining node waits for the leader's log; its storage, once it has any, says the rest.
      peers: config.join === true ? [] : peerIds,
      peerAddresses: new Map(peerIds.map((id) => [id, config.peers[id] ?? ""])),
      electionTicks: config.electionTicks ?? raftDefaults.electionTicks,
      heartbeatTicks: config.heartbeatTicks ?? raftDefaults.heartbeatTicks,
      seed,
      maxInflightMessages: config.maxInflightMessages ?? raftDefaults.maxInflightMessages,
      maxAppendBytes: config.maxAppendBytes ?? raftDefaults.maxAppendBytes,
      snapshotChunkBytes: config.snapshotChunkBytes ?? raftDefaults.snapshotChunkBytes,
      preVote: true,
      checkQuorum: true,
      // As etcd's initial election tick advance: safe with pre-vote and check-quorum, and a whole
      // group restarted together (after a crash, a deploy) serves about an election timeout sooner.
      advanceFirstElection: true,
      maxEntryBytes,
      maxSnapshotBytes,
      ...(config.serviceReplaying === undefined ? {} : { serviceReplaying: config.serviceReplaying }),
      ...(config.serviceBacklogBytes === undefined ? {} : { serviceBacklogBytes: config.serviceBacklogBytes }),
    }
    const core = createRaft(raftConfig, restored)
    const tickMs = config.tickMs ?? raftDefaults.tickMs
    const addressFinder = yield* startAddressFinder({
      self: config.id,
      directory: peerSources,
      rpc,
      intervalMs: raftConfig.electionTicks * tickMs,
      attemptTimeoutMs: raftConfig.heartbeatTicks * tickMs,
    })
    /** Says the rounds that this node has work; inputs before it is set are covered by a first wake. */
    let wake: (() => void) | undefined
    /** An input arrived since the node last joined a round. */
    let wokenSincePrepare = false
    /** The loop waits for a Ready's write; that Ready's committed entries are applied already. */
    let flushing = false
    let stopped = false
    const dispatcher = (yield* Scheduler.Scheduler).makeDispatcher()
    /** Work during a flush is scheduled, not yet done. */
    let flushWorkDue = false
    /**
     * Inputs while a Ready's write is in flight: what they make possible without that write is done
     * once the event loop has turned (inputs already due join it). A callback on the scheduler, apart
     * from the rounds, so a flush that ends resumes them as directly as before; not a fiber, whose
     * wake-up and yield were garbage on every input during a flush.
     */
    const wakeDuringFlush = () => {
      if (flushWorkDue) return
      flushWorkDue = true
      dispatcher.scheduleTask(workDuringFlush, 0)
    }
    /** An input stepped the core or left work for the loop. */
    const wakeUp = () => {
      wokenSincePrepare = true
      wake?.()
      if (flushing) wakeDuringFlush()
      rescheduleTicker()
    }
    /**
     * Ticks are counted from `tickedAt`. Between heartbeats an idle leader has nothing to do, nor
     * has a follower before its election timeout, so the ticker sleeps until the core's next due
     * tick instead of waking every tickMs; the ticks in between only count, and are delivered
     * before the next input is stepped (lease checks and round-trip samples read them).
     */
    const tickerWake = Latch.makeUnsafe(false)
    /** Open while this node leads: `leading`. Every role change wakes the loop, which follows it. */
    const leadership = Latch.makeUnsafe(false)
    const followLeadership = () => {
      if (core.role === "leader") leadership.openUnsafe()
      else leadership.closeUnsafe()
    }
    const nowMs = () => Number(clock.monotonicTimeNanosUnsafe()) / 1e6
    let tickedAt = nowMs()
    /** The deadline of the ticker's long sleep; 0 while it ticks every tickMs. */
    let tickerSleepsUntil = 0
    const dueAt = () => tickedAt + Math.min(core.ticksUntilDue(), raftConfig.electionTicks * 2) * tickMs
    /** An input made a tick due sooner (a vote won, an Append out that may need a resend). */
    const rescheduleTicker = () => {
      if (tickerSleepsUntil !== 0 && dueAt() < tickerSleepsUntil) tickerWake.openUnsafe()
    }
    /**
     * Delivers the ticks owed since `tickedAt`, at most `limit`; a loop held up past that (a long
     * pause) loses the rest, as a late timer would, rather than campaigning or stepping down before
     * reading what arrived meanwhile.
     */
    const catchUpTicks = (limit: number): number => {
      const now = nowMs()
      const owed = Math.floor((now - tickedAt) / tickMs)
      const n = Math.min(owed, limit)
      if (n <= 0) return 0
      tickedAt = n === owed ? tickedAt + n * tickMs : now
      for (let i = 0; i < n; i++) core.tick()
      return n
    }
    /** The ticks that only count: the due one is the ticker's to deliver. */
    const catchUpQuietTicks = () => {
      if (tickerSleepsUntil !== 0) catchUpTicks(core.ticksUntilDue() - 1)
    }
    let readRound = 0
    let waitingReads: ReadIndexCallback[] = []
    // The service snapshots from inside its apply callback, i.e. mid-Ready; compaction waits for advance().
    // A storage that can write the file off the event loop does so first (`ready` once written).
    const pendingSnapshots: {
      index: LogIndex
      data: Uint8Array
      ready: boolean
      /** When the service handed it over, and the log's bytes then: what the catch-up wait is bounded by. */
      queuedAt: number
      logBytesThen: number
    }[] = []
    const snapshotCatchUpMs = config.snapshotCatchUpMs ?? raftDefaults.snapshotCatchUpMs
    const counters = { messagesSent: 0, requestsSent: 0, proposals: 0, fsyncs: 0 }
    const readRounds = new Map<number, ReadIndexCallback[]>()
    /** Membership changes waiting for their entry to commit, by index. */
    const changeWaiters = new Map<
      LogIndex,
      { readonly term: Term; readonly done: (outcome: MembershipChangeResult | NotLeader | NodeStopped) => void }
    >()
    const failChanges = (error: NotLeader | NodeStopped) => {
      const waiting = [...changeWaiters.values()]
      changeWaiters.clear()
      for (const w of waiting) w.done(error)
    }
    const settleChanges = (entries: readonly Entry[]) => {
      if (changeWaiters.size === 0) return
      for (const e of entries) {
        const w = changeWaiters.get(e.index)
        if (w === undefined) continue
        changeWaiters.delete(e.index)
        // Another term at our index: a newer leader's entry replaced ours, which never took effect.
        if (e.term === w.term && e.config !== undefined) w.done({ index: e.index, term: e.term, membership: e.config })
        else w.done(new NotLeader({ leaderHint: core.leader }))
      }
    }
    let knownMembership: Membership | undefined
    let reportedMember = ""
    /**
     * Learns where new members live and says when this node's own place in the group changes: what
     * to log, undefined when the membership is the one already known (every round asks).
     */
    const followMembership = (): Effect.Effect<void> | undefined => {
      const membership = core.membership
      if (membership === knownMembership) return undefined
      knownMembership = membership
      peerSources.learn(membership)
      const member = core.status().self
      if (member === reportedMember) return undefined
      const first = reportedMember === ""
      reportedMember = member
      if (member === "removed") {
        return Effect.logWarning(
          "raft: this node is not a member of its group's latest configuration (removed); it takes no part once that commits",
        ).pipe(Effect.annotateLogs({ node: config.id }))
      }
      if (first && member !== "joining") return undefined
      return Effect.logInfo(`raft: this node is now ${member === "joining" ? "waiting to join" : `a ${member}`}`).pipe(
        Effect.annotateLogs({ node: config.id }),
      )
    }

    if (restored.snapshot !== undefined) config.apply({ type: "snapshot", snapshot: restored.snapshot })

    // Kept and emptied rather than made anew: every Ready with messages comes here. A batch is
    // encoded before sendOneWay returns, so the same array serves every batch.
    const outPeers: NodeId[] = []
    const outBatch: Message[] = []
    /** Packs messages into datagram-sized batches per peer, each peer's in the order given. */
    const send = (messages: readonly Message[]) => {
      if (messages.length === 0) return
      for (const m of messages) {
        counters.messagesSent++
        if (!isResponse(m)) counters.requestsSent++
        if (!outPeers.includes(m.to)) outPeers.push(m.to)
      }
      for (const to of outPeers) {
        const address = peerSources.addressOf(to)
        if (address === undefined) continue
        let bytes = 0
        for (const m of messages) {
          if (m.to !== to) continue
          const size = estimateMessageBytes(m)
          if (bytes > 0 && bytes + size > BATCH_BYTES) {
            rpc.sendOneWay(address, RAFT_CHANNEL, encodeMessages(outBatch))
            outBatch.length = 0
            bytes = 0
          }
          outBatch.push(m)
          bytes += size
        }
        if (outBatch.length > 0) rpc.sendOneWay(address, RAFT_CHANNEL, encodeMessages(outBatch))
        outBatch.length = 0
      }
      outPeers.length = 0
    }

    const failReads = (error: NotLeader | NodeStopped) => {
      const waiting = waitingReads
      waitingReads = []
      const rounds = [...readRounds.values()]
      readRounds.clear()
      for (const done of waiting) done(error)
      for (const waiters of rounds) for (const done of waiters) done(error)
    }

    const applyCommitted = (entries: readonly Entry[]) => {
      if (entries.length === 0) return
      config.apply({ type: "entries", entries })
      settleChanges(entries)
    }

    /** A read state was confirmed by a quorum in a term that was durable before its heartbeats left. */
    const answerReads = (readStates: readonly ReadState[]) => {
      for (const rs of readStates) {
        const waiters = readRounds.get(rs.requestId)
        if (waiters === undefined) continue
        readRounds.delete(rs.requestId)
        for (const done of waiters) done(rs.index)
      }
    }

    /**
     * Starts this Ready's durable write and does at once what waits for none of it: the Ready's
     * committed entries are durable on a majority's disks (perhaps not yet this one's), so they are
     * applied, and their clients answered, while the disk flushes the new entries; a snapshot it
     * installs is made durable first. Returns the wait for the flush, undefined when nothing is written.
     */
    const startReady = (ready: Ready): Effect.Effect<void> | undefined => {
      const hs = ready.hardState
      let durable: Effect.Effect<void> | undefined
      if (ready.snapshot !== undefined) storage.saveSnapshot(ready.snapshot)
      if (hs !== undefined || ready.entries.length > 0) {
        const start = clock.monotonicTimeNanosUnsafe()
        const readsPending = waitingReads.length > 0 || readRounds.size > 0
        const hint = writeHintFor(core.role, core.commitIndex, readsPending, ready.entries)
        durable = storage.write(hs, ready.entries, hint)
        counters.fsyncs++
        const onFsync = config.onFsync
        if (onFsync !== undefined) {
          const measured = () => onFsync(Number(clock.monotonicTimeNanosUnsafe() - start) / 1e9)
          if (durableOnReturn(durable)) measured()
          else durable = Effect.tap(durable, () => Effect.sync(measured))
        }
      }
      if (ready.snapshot !== undefined) config.apply({ type: "snapshot", snapshot: ready.snapshot })
      applyCommitted(ready.committedEntries)
      answerReads(ready.readStates)
      return durable
    }

    /**
     * Inputs that arrive while a Ready's write is in flight step the core; what they make possible
     * without that write is done now rather than after the flush: a read round is started and its
     * heartbeats leave, as does replication of new proposals (a leader in a durable term), entries
     * committed meanwhile are applied and reads confirmed meanwhile answered. Without this, an ack
     * that commits the previous batch during a flush is applied only after that flush ends.
     */
    const actDuringFlush = () => {
      startReadRound()
      const work = core.takeDuringFlush()
      if (work.messages.length > 0) {
        send(work.messages)
        rpc.transport.flush()
      }
      applyCommitted(work.committedEntries)
      // More may wait past the per-batch bound: look again after the event loop turns.
      if (work.committedEntries.length > 0) wakeDuringFlush()
      answerReads(work.readStates)
    }

    const workDuringFlush = () => {
      flushWorkDue = false
      if (!flushing || stopped) return
      try {
        catchUpQuietTicks()
        actDuringFlush()
        rescheduleTicker()
      } catch (error) {
        // As in the loop: the replica stops (an apply that threw, a core defect).
        stopped = true
        fatal(error)
      }
    }

    /** Once the Ready is durable: what it promises may leave, and the core learns it. */
    const finishReady = (ready: Ready) => {
      send(ready.messagesAfterPersist)
      // A read round belongs to one leadership: a lost leadership, or a new term (possibly lost and
      // regained between two Readies, which no role change reveals), ends every round in flight.
      // The core's fields, not status(): this runs for every Ready, and a leader's status lists every follower's progress.
      const term = core.term
      if ((ready.softState !== undefined && ready.softState.role !== "leader") || term !== readTerm) {
        failReads(new NotLeader({ leaderHint: core.leader }))
        failChanges(new NotLeader({ leaderHint: core.leader }))
      }
      readTerm = term
      core.advance(ready)
    }

    let readTerm = core.term
    const startReadRound = () => {
      if (waitingReads.length > 0) {
        const waiters = waitingReads
        waitingReads = []
        const round = ++readRound
        if (core.readIndex(round)) readRounds.set(round, waiters)
        else {
          const error = new NotLeader({ leaderHint: core.leader })
          for (const done of waiters) done(error)
        }
      }
    }
    const compactPending = () => {
      while (pendingSnapshots.length > 0) {
        const { index, data, ready, queuedAt, logBytesThen } = pendingSnapshots[0]!
        if (!ready) return
        // Applied entries may not be on this disk yet (they are on a majority's): the storage must not
        // save a snapshot past the Ready still writing them, so it waits for that write.
        if (index > core.durableIndex()) return
        // A leader keeps, for a while, the entries a follower has not acknowledged: one late ack (a
        // disk stall) or lost Append sends it back to its match, and a log compacted past that would
        // cost it the whole snapshot instead of a few entries. A follower behind for longer (or down)
        // gets the snapshot as before, a second later, or once the log has doubled meanwhile.
        if (
          index > core.lowestFollowerMatch() &&
          nowMs() - queuedAt < snapshotCatchUpMs &&
          storage.raftStateBytes() < 2 * logBytesThen
        ) {
          return
        }
        pendingSnapshots.shift()
        const term = core.termAt(index)
        if (term === undefined || index <= core.firstIndex() - 1 || index > core.appliedIndex) continue
        // The snapshot carries the membership at its index: the log that said it is dropped.
        const membership = core.membershipAt(index)
        storage.saveSnapshot(
          membership.members.length === 0 ? { index, term, data } : { index, term, data, membership },
        )
        core.compact(index, data)
      }
    }

    // The last source seen and its normalized form: datagrams come in runs from the same peer.
    let lastFrom = ""
    let lastSource = ""
    rpc.onOneWay(RAFT_CHANNEL, (payload, from) => {
      if (stopped) return
      const messages = decodeMessages(payload)
      if (messages === undefined) {
        rpc.transport.stats.drop("malformed")
        return
      }
      if (from !== lastFrom) {
        lastFrom = from
        lastSource = normalizeAddress(from)
      }
      const stats = rpc.transport.stats
      catchUpQuietTicks()
      for (const m of messages) {
        if (m.to !== config.id) continue
        // A member speaks only from its own address: anyone else claiming its id is dropped. An id
        // with no address yet may be a member added while this node was cut off: ask who knows it.
        if (!isFromPeer(peerSources.sources, m.from, lastSource)) {
          stats.drop("wrongSender")
          if (peerSources.addressOf(m.from) === undefined) addressFinder.ask()
        } else if (!messageWithinBounds(m, core.term, maxEntryBytes)) {
          // The core ignores these too; checking here counts them.
          stats.drop("outOfBounds")
        } else core.step(m)
      }
      wakeUp()
    })

    // Storage failing (a full disk) or the service's apply throwing leaves this replica unable to
    // make progress; a replica that answers status but never acts would hide that.
    const fatal = config.onFatal ?? exitOnFatal
    /** The Ready taken in the current round, until it is finished. */
    let taken: Ready | undefined
    const member: RoundMember = {
      transport: rpc.transport,
      stopped: () => stopped,
      prepare: () => {
        wokenSincePrepare = false
        // Before a Ready stamps its Appends with the tick they left at.
        catchUpQuietTicks()
        followLeadership()
        startReadRound()
      },
      hasReady: () => !stopped && core.hasReady(),
      // Thesis §10.2.1 (etcd does the same): the core lets a leader's appends leave before its own
      // fsync (`ready.messages`), so the disk write and the followers' round trip overlap instead of
      // adding up.
      take: () => {
        const ready = core.ready()
        taken = ready
        const messages = ready.messages
        if (messages.length > 0) send(messages)
        rescheduleTicker()
        if (messages.length === 0) return "nothing"
        for (const m of messages) if (m.type === "Heartbeat") return "heartbeats"
        return "messages"
      },
      alignHeartbeat: () => {
        if (stopped || core.role !== "leader") return false
        catchUpQuietTicks()
        return core.alignHeartbeat()
      },
      write: () => {
        const durable = startReady(taken!)
        // Durable already: there is no flush for inputs to work beside.
        if (durable !== undefined && !durableOnReturn(durable)) {
          // Inputs that arrived since this round began are acted on too.
          flushing = true
          if (wokenSincePrepare) wakeDuringFlush()
        }
        return durable
      },
      finish: (written) => {
        flushing = false
        const ready = taken
        taken = undefined
        if (written !== undefined && Exit.isFailure(written)) {
          stopped = true
          fatal(Cause.squash(written.cause))
          return
        }
        if (stopped || ready === undefined) return
        finishReady(ready)
        // Under steady load the next Ready is waiting after every flush (inputs stepped the core
        // meanwhile), so rounds may not end for as long as the load lasts: reads waiting for a
        // round, compaction and new members' addresses cannot wait for them to.
        startReadRound()
        compactPending()
      },
      settle: followMembership,
      rest: () => {
        compactPending()
        const report = followMembership()
        followLeadership()
        return report
      },
      fail: (error) => {
        stopped = true
        fatal(error)
      },
    }
    const rounds = Option.getOrUndefined(yield* Effect.serviceOption(ReadyRounds)) ?? (yield* makeReadyRounds)
    wake = (yield* rounds.join(member)).wake
    // A follower that needs a snapshot past maxSnapshotBytes cannot catch up: said once per size.
    let reportedOversizedBytes = 0
    const reportOversizedSnapshot = Effect.suspend(() => {
      const bytes = core.status().oversizedSnapshotBytes
      if (bytes === reportedOversizedBytes) return Effect.void
      reportedOversizedBytes = bytes
      if (bytes === 0) return Effect.logInfo("raft: no follower waits for an oversized snapshot any more")
      return Effect.logError(
        `raft: a lagging follower needs this leader's snapshot of ${bytes} bytes, past maxSnapshotBytes ` +
          `${maxSnapshotBytes}; followers refuse it, so it is not sent and that follower stays behind`,
      ).pipe(Effect.annotateLogs({ node: config.id }))
    })
    const preferredWatch =
      config.preferredLeader === undefined
        ? undefined
        : new PreferredLeaderWatch(config.preferredLeader, {
            // Wall time: the ticker's own count misses the ticks inputs deliver.
            lookEveryMs: raftConfig.heartbeatTicks * tickMs,
            electionMs: raftConfig.electionTicks * tickMs,
          })
    const handToPreferred = Effect.suspend(() => {
      const to = preferredWatch?.look(nowMs(), {
        leading: core.role === "leader",
        replaying: config.serviceReplaying?.() === true,
        commit: core.commitIndex,
        status: () => core.status(),
        addressOf: (id) => peerSources.addressOf(id),
      })
      if (to === undefined || !core.transferLeadership(to)) return Effect.void
      wakeUp()
      return Effect.logInfo(`raft: handing leadership to the preferred leader, node ${to}`).pipe(
        Effect.annotateLogs({ node: config.id }),
      )
    })
    const ticker = Effect.gen(function* () {
      let ticks = 0
      while (!stopped) {
        let delivered: number
        if (core.ticksUntilDue() <= 1) {
          yield* Effect.sleep(tickMs)
          tickedAt = nowMs()
          core.tick()
          delivered = 1
        } else {
          tickerSleepsUntil = dueAt()
          tickerWake.closeUnsafe()
          yield* tickerWake.await.pipe(Effect.timeoutOption(Math.max(1, tickerSleepsUntil - nowMs())))
          tickerSleepsUntil = 0
          if (stopped) return
          delivered = catchUpTicks(core.ticksUntilDue())
        }
        yield* handToPreferred
        if (delivered === 0) continue
        wakeUp()
        const before = ticks
        ticks += delivered
        if (Math.floor(ticks / raftConfig.heartbeatTicks) !== Math.floor(before / raftConfig.heartbeatTicks)) {
          yield* reportOversizedSnapshot
        }
      }
    })
    yield* Effect.forkScoped(ticker)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        stopped = true
        rpc.onOneWay(RAFT_CHANNEL, () => {})
        failReads(new NodeStopped())
        failChanges(new NodeStopped())
      }),
    )
    wakeUp()

    const proposeUnsafe = (data: Uint8Array): ProposeResult | NotLeader | ProposalTooLarge => {
      if (stopped) return new NotLeader({ leaderHint: 0 })
      // An entry no message can carry would be dropped by the transport on every resend, and the
      // group could commit nothing after it: refuse it before it enters the log.
      if (data.length > maxEntryBytes) return new ProposalTooLarge({ bytes: data.length, maxBytes: maxEntryBytes })
      // Backpressure: a leader that cannot commit (a minority partition, slow followers) must not
      // grow its log without bound. Callers treat this like a lost leadership and retry later.
      if (core.lastIndex() - core.commitIndex > maxUncommittedEntries) return new NotLeader({ leaderHint: 0 })
      const result = core.propose(data)
      if ("notLeader" in result) return new NotLeader({ leaderHint: result.leaderHint })
      counters.proposals++
      wakeUp()
      return { index: result.index, term: result.term }
    }

    const readIndexWith = (done: ReadIndexCallback): void => {
      if (stopped) {
        done(new NodeStopped())
        return
      }
      waitingReads.push(done)
      wakeUp()
    }

    const changeMembership = (change: MembershipChange): Effect.Effect<MembershipChangeResult, MembershipChangeError> =>
      Effect.callback<MembershipChangeResult, MembershipChangeError>((resume) => {
        if (stopped) {
          resume(Effect.fail(new NodeStopped()))
          return
        }
        const result = core.proposeMembership(change)
        if ("refused" in result) {
          resume(Effect.fail(refusalError(result.refused)))
          return
        }
        changeWaiters.set(result.index, {
          term: result.term,
          done: (outcome) =>
            resume(
              outcome instanceof NotLeader || outcome instanceof NodeStopped
                ? Effect.fail(outcome)
                : Effect.succeed(outcome),
            ),
        })
        wakeUp()
      })

    const members = (s: ReturnType<typeof core.status>): MemberStatus[] => {
      const progress = new Map((s.progress ?? []).map((p) => [p.id, p]))
      return s.membership.members.map((m) => {
        const isLeader = s.role === "leader"
        const match = !isLeader ? -1 : m.id === config.id ? s.lastIndex : (progress.get(m.id)?.match ?? 0)
        return {
          id: m.id,
          address: peerSources.addressOf(m.id) ?? m.address,
          role: m.id === s.leader ? "leader" : m.role,
          match,
          lag: isLeader ? s.lastIndex - match : -1,
        }
      })
    }

    const status = (): RaftStatus => {
      const s = core.status()
      return {
        id: config.id,
        term: s.term,
        role: s.role,
        leader: s.leader,
        commitIndex: s.commit,
        appliedIndex: config.serviceApplied === undefined ? s.applied : Math.min(s.applied, config.serviceApplied()),
        lastIndex: s.lastIndex,
        snapshotIndex: s.snapshotIndex,
        raftStateBytes: storage.raftStateBytes(),
        snapshotBytes: storage.snapshotBytes(),
        oversizedSnapshotBytes: s.oversizedSnapshotBytes,
        member: s.self,
        membershipIndex: s.membershipIndex,
        members: members(s),
      }
    }

    rpc.handle(RaftStatusMethod, () => status())

    return {
      id: config.id,
      leading: leadership.await,
      maxEntryBytes,
      proposeUnsafe,
      propose: (data) =>
        Effect.suspend((): Effect.Effect<ProposeResult, NotLeader | NodeStopped | ProposalTooLarge> => {
          if (stopped) return Effect.fail(new NodeStopped())
          const result = proposeUnsafe(data)
          return result instanceof NotLeader || result instanceof ProposalTooLarge
            ? Effect.fail(result)
            : Effect.succeed(result)
        }),
      readIndex: () =>
        Effect.callback<LogIndex, NotLeader | NodeStopped>((resume) => {
          readIndexWith((outcome) =>
            resume(typeof outcome === "number" ? Effect.succeed(outcome) : Effect.fail(outcome)),
          )
        }),
      readIndexWith,
      snapshot: (index, data) =>
        Effect.sync(() => {
          const pending = {
            index,
            data,
            ready: storage.prepareSnapshot === undefined,
            queuedAt: nowMs(),
            logBytesThen: storage.raftStateBytes(),
          }
          pendingSnapshots.push(pending)
          const term = core.termAt(index)
          if (!pending.ready && term !== undefined && index > core.firstIndex() - 1) {
            const membership = core.membershipAt(index)
            const snapshot = membership.members.length === 0 ? { index, term, data } : { index, term, data, membership }
            // If the write fails, saveSnapshot does the whole work when compacting.
            const done = () => {
              pending.ready = true
              wakeUp()
            }
            storage.prepareSnapshot!(snapshot).then(done, done)
          } else pending.ready = true
          wake?.()
        }),
      transferLeadership: (to) =>
        Effect.suspend(() => {
          const s = core.status()
          if (s.role !== "leader") return Effect.fail(new NotLeader({ leaderHint: s.leader }))
          const target = to ?? core.mostUpToDateFollower()
          if (target === undefined || !core.transferLeadership(target)) {
            return Effect.fail(new NotLeader({ leaderHint: s.leader }))
          }
          wakeUp()
          return Effect.void
        }),
      addLearner: (id, address) => changeMembership({ type: "add-learner", id, address }),
      promote: (id) => changeMembership({ type: "promote", id }),
      addVoter: (id, address) => changeMembership({ type: "add-voter", id, address }),
      removeMember: (id) => changeMembership({ type: "remove", id }),
      status,
      counters: () => ({ ...counters }),
      raftStateBytes: () => storage.raftStateBytes(),
      snapshotIndex: () => core.firstIndex() - 1,
      leaderReplaying: () => core.leaderReplaying,
      leader: () => core.leader,
    } satisfies RaftNodeShape
  })

const refusalError = (r: ChangeRefusal): MembershipChangeError => {
  switch (r.reason) {
    case "not-leader":
      return new NotLeader({ leaderHint: r.leaderHint })
    case "change-in-progress":
      return new ChangeInProgress({ index: r.index })
    case "unknown-member":
      return new UnknownMember({ id: r.id })
    case "already-member":
      return new AlreadyMember({ id: r.id, role: r.role })
    case "last-voter":
      return new LastVoter({ id: r.id })
  }
}

/** A service handle for code that runs one Raft node per Effect context. */
export class RaftNode extends Context.Service<RaftNode, RaftNodeShape>()("@kv/raft/RaftNode") {
  static layer(config: RaftNodeConfig): Layer.Layer<RaftNode, StorageCorrupt, RpcNode | Storage> {
    return Layer.effect(RaftNode, makeRaftNode(config))
  }
}
