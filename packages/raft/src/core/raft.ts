/**
 * The Raft state machine (roles and rules), after etcd-io/raft: synchronous and deterministic.
 * Inputs are tick(), step(), propose(), readIndex(), transferLeadership() and compact(); the only
 * output is the Ready batch. Section numbers refer to the Raft paper (Ongaro & Ousterhout 2014)
 * and, where marked "thesis", to Ongaro's dissertation (2014).
 */
import { DEFAULT_MAX_ENTRY_BYTES, messageWithinBounds } from "./bounds.ts"
import { RaftLog } from "./log.ts"
import {
  applyChange,
  type ChangeRefusal,
  isRefusal,
  type MembershipChange,
  roleOf,
  votersMembership,
  votersOf,
} from "./membership.ts"
import { Progress } from "./progress.ts"
import { majority, quorumValue, voteResult } from "./quorum.ts"
import { ReadOnly } from "./readOnly.ts"
import { mixSeed, Rng } from "./rng.ts"
import { SnapshotReceiver } from "./snapshotReceiver.ts"
import type {
  Append,
  AppendResp,
  Entry,
  FlushWork,
  HardState,
  Heartbeat,
  HeartbeatResp,
  LogIndex,
  MemberRole,
  Membership,
  Message,
  NodeId,
  PreVote,
  PreVoteResp,
  ReadState,
  Ready,
  Role,
  Snap,
  SnapResp,
  Snapshot,
  SoftState,
  Status,
  Term,
  Vote,
  VoteResp,
} from "./types.ts"

export interface RaftConfig {
  readonly id: NodeId
  /**
   * The bootstrap voters, this node included: the membership until the log or a snapshot says
   * otherwise. Empty for a node joining an existing group: it waits for the leader's log.
   */
  readonly peers: readonly NodeId[]
  /** Addresses of the bootstrap peers, written into the first configuration entry (opaque here). */
  readonly peerAddresses?: ReadonlyMap<NodeId, string>
  /** Minimum election timeout; each timeout is drawn from [electionTicks, 2 * electionTicks). */
  readonly electionTicks: number
  readonly heartbeatTicks: number
  /** Seeds the election-timeout PRNG (mixed with the id, so equal seeds on all nodes still differ). */
  readonly seed: number
  /** Appends a leader may have unacknowledged per follower while pipelining. */
  readonly maxInflightMessages: number
  /** Data bytes per Append (at least one entry is always sent). */
  readonly maxAppendBytes: number
  readonly snapshotChunkBytes: number
  readonly preVote: boolean
  readonly checkQuorum: boolean
  /**
   * The first election timeout after this node starts is the usual random one less electionTicks - 1
   * ticks: [1, electionTicks] instead of [electionTicks, 2 * electionTicks). A group restarted
   * together elects a leader that much sooner; a lone restarted member's early pre-vote changes
   * nothing while the others hear from their leader (they refuse it, and no term moves). Default false.
   */
  readonly advanceFirstElection?: boolean
  /** Data bytes of committed entries per Ready (at least one). Default 1 MiB. */
  readonly maxCommittedBytesPerReady?: number
  /** ReadIndex requests a leader holds unanswered; readIndex() returns false beyond. Default 4096. */
  readonly maxPendingReads?: number
  /** Snapshot chunks in flight per follower. Default 4. */
  readonly snapshotChunksInflight?: number
  /**
   * Largest snapshot a follower accepts from a leader. Default 1 GiB. Every replica must use the
   * same value: a leader whose snapshot is larger does not send it and reports it in status().
   */
  readonly maxSnapshotBytes?: number
  /**
   * Largest entry data: what one Raft message can carry (see bounds.ts). propose() refuses more
   * (the shell checks first and answers ProposalTooLarge); an Append with a larger entry is
   * dropped. Default DEFAULT_MAX_ENTRY_BYTES (the rpc layer's default message size, less overhead).
   */
  readonly maxEntryBytes?: number
  /**
   * Whether the service behind this node is still applying the log it restarted with: a leader
   * says so in its heartbeats, and its followers' services give way to it (see `leaderReplaying`).
   */
  readonly serviceReplaying?: () => boolean
  /**
   * Bytes of log the service behind this node still has to apply before it serves (a restart's
   * replay; 0 once caught up). Its pre-votes carry it, and while a node with no leader has a
   * backlog of its own, it refuses its pre-vote to a candidate whose backlog is well above its own:
   * of replicas restarted together, one with less to replay leads, and the group serves sooner.
   */
  readonly serviceBacklogBytes?: () => number
}

/**
 * A replaying voter refuses a pre-vote only to a candidate whose backlog exceeds its own by more
 * than this many bytes or a quarter of its own, whichever is more: replicas with about the same
 * backlog campaign as ever.
 */
export const BACKLOG_MARGIN_BYTES = 1 << 20

export interface RestoredState {
  readonly hardState: HardState
  readonly snapshot: Snapshot | undefined
  /** Contiguous, starting right after the snapshot (or at 1). */
  readonly entries: readonly Entry[]
}

export type ProposeResult =
  | { readonly index: LogIndex; readonly term: Term }
  | { readonly notLeader: true; readonly leaderHint: NodeId | 0 }

export type MembershipProposal =
  | { readonly index: LogIndex; readonly term: Term; readonly membership: Membership }
  | { readonly refused: ChangeRefusal }

export interface RaftCore {
  readonly id: NodeId
  readonly term: Term
  readonly role: Role
  readonly leader: NodeId | 0
  readonly commitIndex: LogIndex
  readonly appliedIndex: LogIndex
  /** Follower: the leader's last heartbeat said its service is still replaying its restart's log. */
  readonly leaderReplaying: boolean
  /** The latest configuration in the log, committed or not (the same object until it changes). */
  readonly membership: Membership
  tick(): void
  /**
   * How many ticks until tick() next has anything to do: a leader at its next heartbeat or
   * check-quorum (every tick while a message may need a resend); any other node at its election
   * timeout (Infinity for one that never campaigns). Inputs can shorten it; ticks before it only
   * count, so a shell may deliver them late, all at once, before its next input.
   */
  ticksUntilDue(): number
  /**
   * Messages for another node, from a non-member, from self, or outside the bounds of bounds.ts
   * (terms and indexes no honest peer sends) are ignored.
   */
  step(message: Message): void
  /**
   * Appends `data` (non-empty, at most maxEntryBytes: larger is a caller's defect and throws) to the
   * leader's log; it is committed once a later Ready hands it out.
   */
  propose(data: Uint8Array): ProposeResult
  /**
   * Appends a configuration entry for `change` (thesis §4.1: it takes effect at once, committed or
   * not). Refused, with nothing appended, unless this node leads, has committed an entry of its
   * term, and no other change is uncommitted; or when the change makes no sense for the membership.
   */
  proposeMembership(change: MembershipChange): MembershipProposal
  /** The configuration in force at `index` (at or after the snapshot index): what a snapshot there carries. */
  membershipAt(index: LogIndex): Membership
  /**
   * §6.4 ReadIndex. True: a ReadState with this id will follow while this node stays leader (reads
   * are dropped when it steps down: the shell fails them when softState shows the change).
   * False: not leader, or too many reads pending.
   */
  readIndex(requestId: number): boolean
  /** Thesis §3.10; false if not leader or `to` is not another voter. */
  transferLeadership(to: NodeId): boolean
  /**
   * Another leader in this process sends its heartbeats now: a leader past half its heartbeat
   * interval sends its own at once, so that they share datagrams and, sent together, fall due
   * together. Whether it sent (its heartbeats are then in the next Ready).
   */
  alignHeartbeat(): boolean
  /**
   * The service snapshotted its state at `index` (<= what it has applied, and <= `durableIndex()`:
   * applied entries may not be on this disk yet, and a snapshot must not cover a hole in the log):
   * drop the log up to it.
   */
  compact(index: LogIndex, data: Uint8Array): void
  /** The last index of this node's log that is on its disk. */
  durableIndex(): LogIndex
  /**
   * On a leader, the lowest index acknowledged by a follower that is being sent entries, not a
   * snapshot: compacting past it could cost that follower the whole snapshot after one late or lost
   * Append. Infinity when there is none (or this node does not lead).
   */
  lowestFollowerMatch(): LogIndex
  hasReady(): boolean
  ready(): Ready
  /**
   * While a Ready is outstanding (its writes on their way to the disk): what inputs since made
   * possible that depends on nothing unflushed here — entries newly committed (durable on a majority), reads
   * confirmed, a leader's replication traffic in a term and vote already durable. The shell acts on
   * it at once; the next Ready holds only the rest. Throws when no Ready is outstanding.
   */
  takeDuringFlush(): FlushWork
  advance(ready: Ready): void
  status(): Status
  hardState(): HardState
  termAt(index: LogIndex): Term | undefined
  /** Undefined when compacted into the snapshot or beyond the last index. */
  entryAt(index: LogIndex): Entry | undefined
  firstIndex(): LogIndex
  lastIndex(): LogIndex
  /** The newest snapshot this node holds (its service's or one installed from a leader). */
  snapshot(): Snapshot | undefined
  /** Leader only: the follower with the highest match index (a good transfer target). */
  mostUpToDateFollower(): NodeId | undefined
}

export const createRaft = (config: RaftConfig, restored: RestoredState): RaftCore => new Raft(config, restored)

const EMPTY_DATA = new Uint8Array(0)

interface Limits {
  readonly maxCommittedBytesPerReady: number
  readonly maxPendingReads: number
  readonly snapshotChunksInflight: number
  readonly maxSnapshotBytes: number
  readonly maxEntryBytes: number
}

type CampaignKind = "pre-vote" | "election" | "transfer"

class Raft implements RaftCore {
  readonly id: NodeId
  private readonly cfg: RaftConfig
  private readonly limits: Limits
  private readonly rng: Rng
  private readonly log: RaftLog
  /** The latest configuration in the log (see RaftLog.latestConfig) and the index of its entry (0: none in the log). */
  private currentMembership: Membership
  private membershipIndex: LogIndex = 0
  /** The log's configVersion that `membership` and the fields derived from it reflect. */
  private configVersion = -1
  /** Voters of `membership`: every quorum (votes, commit, ReadIndex, check-quorum) is a majority of them. */
  private voters: NodeId[] = []
  private selfRole: MemberRole | undefined
  /** This node was a member of some configuration it knew: outside the membership it is removed, not joining. */
  private seenSelf: boolean
  /**
   * One per other member and per member the latest configuration removed; the leader's view of
   * their logs (reset on every election win).
   */
  private readonly progress = new Map<NodeId, Progress>()
  /** The same Progress objects, for iteration on hot paths. */
  private followers: Progress[] = []
  /** The other voters' Progress: what commitment and check-quorum count. */
  private voterProgress: Progress[] = []
  /**
   * Members the latest configuration removed, by the index of that entry, with the ticks since they
   * last answered: the leader keeps sending them the log until they hold the entry that removed them
   * (so they learn it and stop campaigning), or they stay silent for two election timeouts.
   */
  private readonly retiring = new Map<NodeId, { readonly index: LogIndex; idleTicks: number }>()
  /** Leader: index of its first entry (the no-op); a membership change waits until it is committed. */
  private termStartIndex: LogIndex = 0
  private readonly votes = new Map<NodeId, boolean>()
  /** What the campaign under way (as pre-candidate or candidate) asks for; set by each campaign. */
  private campaignKind: CampaignKind = "election"
  private readonly readOnly = new ReadOnly()
  private readonly snapshotReceiver: SnapshotReceiver
  private readonly matchScratch: number[] = []

  private currentTerm: Term
  private vote: NodeId | 0
  private lead: NodeId | 0 = 0
  private leadReplaying = false
  private currentRole: Role = "follower"
  /** Ticks since the last valid leader contact (follower) or the last quorum check (leader). */
  private electionElapsed = 0
  private heartbeatElapsed = 0
  /** Ticks since this node started: a clock for rules that must not fire too often. */
  private ticks = 0
  private randomizedElectionTimeout = 0
  /** Leadership is being handed to this follower; proposals are refused meanwhile. */
  private leadTransferee: NodeId | 0 = 0

  private msgs: Message[] = []
  private readStates: ReadState[] = []
  private prevHardState: HardState
  /** The hard state on disk: the restored one, then that of each Ready advanced past. */
  private durableHardState: HardState
  private prevSoftState: SoftState
  private outstanding: Ready | undefined = undefined
  /** Leader: the last snapshot a lagging follower needed that was past maxSnapshotBytes. */
  private oversizedSnapshot: { readonly index: LogIndex; readonly bytes: number } | undefined = undefined

  constructor(config: RaftConfig, restored: RestoredState) {
    validateConfig(config)
    this.id = config.id
    this.cfg = config
    this.limits = {
      maxCommittedBytesPerReady: config.maxCommittedBytesPerReady ?? 1 << 20,
      maxPendingReads: config.maxPendingReads ?? 4096,
      snapshotChunksInflight: config.snapshotChunksInflight ?? 4,
      maxSnapshotBytes: config.maxSnapshotBytes ?? 1 << 30,
      maxEntryBytes: config.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES,
    }
    this.snapshotReceiver = new SnapshotReceiver(this.limits.maxSnapshotBytes)
    this.rng = new Rng(mixSeed(config.seed, config.id))
    const hs = restored.hardState
    const bootstrap = votersMembership(config.peers, (id) => config.peerAddresses?.get(id) ?? "")
    this.log = new RaftLog(restored.snapshot, restored.entries, hs.commit, bootstrap)
    this.currentMembership = bootstrap
    this.refreshMembership()
    this.seenSelf =
      config.peers.includes(this.id) ||
      this.selfRole !== undefined ||
      roleOf(this.log.previousConfig() ?? bootstrap, this.id) !== undefined
    // A torn write can keep entries of a term whose hard-state record was lost; that vote never left.
    this.currentTerm = Math.max(hs.term, this.log.lastTerm())
    this.vote = hs.term === this.currentTerm ? hs.vote : 0
    this.prevHardState = hs
    this.durableHardState = hs
    this.prevSoftState = { role: "follower", leader: 0 }
    this.resetElectionTimeout()
    if (config.advanceFirstElection === true) this.electionElapsed = this.cfg.electionTicks - 1
  }

  get term(): Term {
    return this.currentTerm
  }

  get role(): Role {
    return this.currentRole
  }

  get leader(): NodeId | 0 {
    return this.lead
  }

  get leaderReplaying(): boolean {
    return this.leadReplaying && this.lead !== 0 && this.lead !== this.id
  }

  get membership(): Membership {
    return this.currentMembership
  }

  get commitIndex(): LogIndex {
    return this.log.committed
  }

  get appliedIndex(): LogIndex {
    return this.log.applied
  }

  // ---------------------------------------------------------------- inputs

  tick(): void {
    this.ticks++
    if (this.currentRole === "leader") this.tickLeader()
    else this.tickElection()
  }

  ticksUntilDue(): number {
    if (this.currentRole === "leader") return this.leaderTicksUntilDue()
    if (!this.promotable()) return Number.POSITIVE_INFINITY
    const election = Math.max(1, this.randomizedElectionTimeout - this.electionElapsed)
    // A campaign under way has voters yet to answer (once all have, it is decided) and asks them
    // again (tickElection): the ticker must not sleep past that.
    if (this.currentRole === "pre-candidate" || this.currentRole === "candidate") {
      const every = this.campaignResendTicks()
      return Math.min(election, every - (this.electionElapsed % every))
    }
    return election
  }

  /**
   * An idle leader acts at its next heartbeat or check-quorum; one with a message that may need a
   * resend (tickLeader's resendUnacknowledged), a retiring member or a transfer acts on every tick.
   */
  private leaderTicksUntilDue(): number {
    if (this.retiring.size > 0 || this.leadTransferee !== 0) return 1
    for (const pr of this.followers) {
      if (pr.resendTimeoutTicks() >= this.cfg.heartbeatTicks) continue
      if (pr.state === "replicate" && pr.inflights.oldestSentAt() >= 0) return 1
      if (pr.state === "probe" && pr.probeSent && pr.probeSentAt >= 0) return 1
    }
    const heartbeat = this.cfg.heartbeatTicks - this.heartbeatElapsed
    const quorumCheck = this.cfg.electionTicks - this.electionElapsed
    return Math.max(1, Math.min(heartbeat, quorumCheck))
  }

  private tickElection(): void {
    this.electionElapsed++
    // Learners, removed members and nodes still joining never campaign (thesis §4.2.2, §4.2.1).
    if (this.electionElapsed >= this.randomizedElectionTimeout && this.promotable()) {
      this.electionElapsed = 0
      // A member whose removal is pending campaigns only if a pre-vote says its log is needed, so
      // a removed node that missed the commit cannot raise the group's term (thesis §4.2.3).
      this.campaign(this.cfg.preVote || this.selfRole !== "voter" ? "pre-vote" : "election")
      return
    }
    // A campaign's requests are datagrams: one sent to a peer not yet listening (a group started
    // together, the first one up campaigns) or lost on the way would otherwise wait for the next
    // election timeout, 300–600 ms, while a quorum may already be up. Asked again, a voter answers as
    // it did (a pre-vote changes nothing; a vote already given in this term goes to the same node).
    if (
      (this.currentRole === "pre-candidate" || this.currentRole === "candidate") &&
      this.electionElapsed % this.campaignResendTicks() === 0
    ) {
      this.requestVotes(this.campaignKind, true)
    }
  }

  /** How often a campaign asks again the voters that have not answered. */
  private campaignResendTicks(): number {
    return Math.max(1, Math.floor(this.cfg.heartbeatTicks / 2))
  }

  private tickLeader(): void {
    this.heartbeatElapsed++
    this.electionElapsed++
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0
      // §6.2 check-quorum: a leader that has not heard from a majority for an election timeout
      // may be partitioned away; stepping down stops it from serving reads on a stale lease.
      if (this.cfg.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.currentTerm, 0)
        return
      }
      if (this.removalCommitted()) {
        // Our own removal is committed and the handover did not finish in time: step down anyway;
        // the remaining voters elect a leader among themselves.
        this.becomeFollower(this.currentTerm, 0)
        return
      }
      // Thesis §3.10: a transfer that did not finish within an election timeout is abandoned.
      this.leadTransferee = 0
    }
    this.tickRetiring()
    this.resendUnacknowledged()
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) this.broadcastHeartbeat(this.readOnly.latestSentRound())
  }

  step(m: Message): void {
    this.stepMessage(m)
    this.refreshMembership()
  }

  /**
   * Thesis §4.1: a server processes requests without consulting its configuration, so a lagging
   * member hears a leader (or votes for a candidate) its log does not yet name. Who may speak for
   * an id is the shell's concern (addresses); the leader takes answers only from its members.
   */
  private stepMessage(m: Message): void {
    if (m.to !== this.id || m.from === this.id || m.from === 0) return
    if (!messageWithinBounds(m, this.currentTerm, this.limits.maxEntryBytes)) return
    if (m.term > this.currentTerm) {
      if (m.type === "PreVote" || (m.type === "Vote" && this.cfg.checkQuorum && !m.transfer)) {
        // Leader lease: while we hear from a leader, a campaign is not needed and must not
        // raise our term (thesis §9.6 for pre-votes, §6.2 for votes with check-quorum).
        if (this.inLease()) {
          if (m.type === "PreVote") this.respondVote(m, false)
          return
        }
      }
      if (m.type === "PreVote" || (m.type === "PreVoteResp" && !m.reject)) {
        // A pre-vote (or a grant echoing its future term) changes nobody's term.
      } else {
        const leader = m.type === "Append" || m.type === "Heartbeat" || m.type === "Snap" ? m.from : 0
        const elapsed = this.electionElapsed
        const timeout = this.randomizedElectionTimeout
        this.becomeFollower(m.term, leader)
        // Figure 2: only a leader's message or a granted vote restarts the election timer. A
        // candidate with a stale log must not keep up-to-date nodes from ever campaigning.
        if (leader === 0) {
          this.electionElapsed = elapsed
          this.randomizedElectionTimeout = timeout
        }
      }
    } else if (m.term < this.currentTerm) {
      if (m.type === "Append" || m.type === "Heartbeat" || m.type === "Snap") {
        // A stale leader. With pre-vote or check-quorum our higher term may never reach it through
        // a vote request, so answer to make it step down; nor will it from a leader whose
        // configuration no longer names it (a removed leader that missed its removal's commit).
        if (this.cfg.checkQuorum || this.cfg.preVote || roleOf(this.currentMembership, m.from) === undefined) {
          this.sendAppendResp(m.from, 0, true, 0, 0)
        }
      } else if (m.type === "PreVote" || m.type === "Vote") {
        // Tell a candidate from an older term about ours (Figure 2: the refusal carries our term),
        // or it could keep trying forever: a voter whose configuration does not name it never
        // sends it anything else (a lagging member that still holds an older configuration).
        this.respondVote(m, false)
      }
      return
    }

    if (m.type === "PreVote" || m.type === "Vote") {
      this.handleVoteRequest(m)
      return
    }
    switch (this.currentRole) {
      case "leader":
        this.stepLeader(m)
        return
      case "candidate":
      case "pre-candidate":
        this.stepCandidate(m)
        return
      case "follower":
        this.stepFollower(m)
        return
    }
  }

  propose(data: Uint8Array): ProposeResult {
    if (this.currentRole !== "leader") return { notLeader: true, leaderHint: this.lead }
    if (this.leadTransferee !== 0) return { notLeader: true, leaderHint: this.leadTransferee }
    if (data.length === 0) throw new Error("raft: propose() needs data; empty entries are the leader's no-ops")
    if (data.length > this.limits.maxEntryBytes) {
      throw new Error(`raft: propose() of ${data.length} bytes, more than maxEntryBytes ${this.limits.maxEntryBytes}`)
    }
    const index = this.log.lastIndex() + 1
    this.log.append({ term: this.currentTerm, index, data })
    return { index, term: this.currentTerm }
  }

  proposeMembership(change: MembershipChange): MembershipProposal {
    if (this.currentRole !== "leader") return { refused: { reason: "not-leader", leaderHint: this.lead } }
    if (this.leadTransferee !== 0) return { refused: { reason: "not-leader", leaderHint: this.leadTransferee } }
    // At most one change in flight, and none before this leader has committed an entry of its term
    // (until then its log may still end in a deposed leader's uncommitted change: thesis §4.1 errata).
    if (this.membershipIndex > this.log.committed) {
      return { refused: { reason: "change-in-progress", index: this.membershipIndex } }
    }
    if (!this.committedInCurrentTerm()) {
      return { refused: { reason: "change-in-progress", index: this.termStartIndex } }
    }
    const next = applyChange(this.currentMembership, change)
    if (isRefusal(next)) return { refused: next }
    const index = this.log.lastIndex() + 1
    this.log.append({ term: this.currentTerm, index, data: EMPTY_DATA, config: next })
    this.refreshMembership()
    return { index, term: this.currentTerm, membership: next }
  }

  membershipAt(index: LogIndex): Membership {
    return this.log.configAt(index)
  }

  readIndex(requestId: number): boolean {
    if (this.currentRole !== "leader") return false
    if (this.readOnly.pending() >= this.limits.maxPendingReads) return false
    // §6.4: until it commits an entry of its own term a new leader may not know the latest commit.
    if (!this.committedInCurrentTerm()) this.readOnly.defer(requestId)
    else this.serveRead(requestId)
    return true
  }

  private serveRead(requestId: number): void {
    if (this.voters.length === 1 && this.selfRole === "voter")
      this.readStates.push({ requestId, index: this.log.committed })
    else this.readOnly.join(requestId)
  }

  alignHeartbeat(): boolean {
    if (this.currentRole !== "leader" || this.followers.length === 0) return false
    if (2 * this.heartbeatElapsed < this.cfg.heartbeatTicks) return false
    this.broadcastHeartbeat(this.readOnly.latestSentRound())
    return true
  }

  transferLeadership(to: NodeId): boolean {
    if (this.currentRole !== "leader") return false
    const pr = this.progress.get(to)
    if (pr === undefined || !this.voters.includes(to)) return false
    if (this.leadTransferee === to) return true
    this.leadTransferee = to
    // The transfer is bounded by one election timeout from now.
    this.electionElapsed = 0
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to)
    return true
  }

  durableIndex(): LogIndex {
    return this.log.stableIndex
  }

  lowestFollowerMatch(): LogIndex {
    let lowest = Number.POSITIVE_INFINITY
    if (this.currentRole !== "leader") return lowest
    for (const pr of this.followers) if (pr.state !== "snapshot" && pr.match < lowest) lowest = pr.match
    return lowest
  }

  compact(index: LogIndex, data: Uint8Array): void {
    const handedOut = this.outstanding?.committedEntries.at(-1)?.index ?? 0
    if (index > Math.max(this.log.applied, handedOut)) {
      throw new Error(`raft: compact(${index}) beyond applied index ${this.log.applied}`)
    }
    this.log.compact(index, data)
    this.refreshMembership()
  }

  // ---------------------------------------------------------------- Ready

  hasReady(): boolean {
    if (this.outstanding !== undefined) return false
    this.flush()
    return (
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.log.hasUnstable() ||
      this.log.pendingSnapshot !== undefined ||
      this.log.hasCommittedAfter(this.log.applied) ||
      this.hardStateChanged() ||
      this.currentRole !== this.prevSoftState.role ||
      this.lead !== this.prevSoftState.leader
    )
  }

  ready(): Ready {
    if (this.outstanding !== undefined) throw new Error("raft: ready() called before advance() of the previous Ready")
    this.flush()
    const hs = this.hardStateChanged() ? this.hardState() : this.prevHardState
    const softChanged = this.currentRole !== this.prevSoftState.role || this.lead !== this.prevSoftState.leader
    const snapshot = this.log.pendingSnapshot
    const termKept = hs.term === this.prevHardState.term
    const replication =
      this.currentRole === "leader" && snapshot === undefined && termKept && hs.vote === this.prevHardState.vote
    const [messages, messagesAfterPersist] =
      replication || termKept ? splitEarly(this.msgs, replication, termKept) : [NO_MESSAGES, this.msgs]
    const rd: Ready = {
      hardState: hs === this.prevHardState ? undefined : hs,
      entries: this.log.unstableEntries(),
      snapshot,
      messages,
      messagesAfterPersist,
      committedEntries: this.log.committedAfter(this.log.applied, this.limits.maxCommittedBytesPerReady),
      readStates: this.readStates,
      softState: softChanged ? { role: this.currentRole, leader: this.lead } : undefined,
    }
    this.msgs = []
    this.readStates = []
    this.prevHardState = hs
    if (rd.softState !== undefined) this.prevSoftState = rd.softState
    this.outstanding = rd
    return rd
  }

  takeDuringFlush(): FlushWork {
    const rd = this.outstanding
    if (rd === undefined) throw new Error("raft: takeDuringFlush() with no Ready outstanding")
    let messages = NO_MESSAGES
    const replication = this.replicationMayLeave()
    if (replication) this.flush()
    const heartbeatResps = this.durableHardState.term === this.currentTerm
    if (this.msgs.length > 0 && (replication || heartbeatResps)) {
      const [now, later] = splitEarly(this.msgs, replication, heartbeatResps)
      messages = now
      this.msgs = later.length === 0 ? [] : later.slice()
    }
    // Entries past both what was applied and what the outstanding Ready handed out; committedAfter
    // stops at the durable log and hands out nothing while a snapshot is pending (the outstanding
    // Ready's, or one received since): the service must install it before any entry after it.
    const after = Math.max(this.log.applied, rd.committedEntries[rd.committedEntries.length - 1]?.index ?? 0)
    const committedEntries = this.log.committedAfter(after, this.limits.maxCommittedBytesPerReady)
    const lastTaken = committedEntries[committedEntries.length - 1]
    if (lastTaken !== undefined) this.log.appliedTo(lastTaken.index)
    const readStates = this.readStates
    if (readStates.length > 0) this.readStates = []
    return { committedEntries, readStates, messages }
  }

  /**
   * The rule of a Ready's early `messages`, for the time its write is in flight: a leader whose
   * current term and vote are on disk already (the outstanding Ready may be writing them) and that
   * installs no snapshot.
   */
  private replicationMayLeave(): boolean {
    const d = this.durableHardState
    return (
      this.currentRole === "leader" &&
      this.log.pendingSnapshot === undefined &&
      d.term === this.currentTerm &&
      d.vote === this.vote
    )
  }

  advance(rd: Ready): void {
    if (rd !== this.outstanding) throw new Error("raft: advance() of a Ready that is not outstanding")
    this.outstanding = undefined
    if (rd.hardState !== undefined) this.durableHardState = rd.hardState
    if (rd.snapshot !== undefined) {
      this.log.stableSnapTo(rd.snapshot.index)
      this.log.appliedTo(rd.snapshot.index)
    }
    if (rd.entries.length > 0) this.log.stableTo(rd.entries)
    // Entries taken during the flush may have moved applied past these already.
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1]
    if (lastApplied !== undefined) this.log.appliedTo(lastApplied.index)
    // The leader counts its own entries for commitment only once they are durable.
    if (this.currentRole === "leader" && this.maybeCommit()) this.onCommitAdvanced()
  }

  // ---------------------------------------------------------------- introspection

  /**
   * Term and vote must be durable before anything that depends on them is sent. The commit index
   * is volatile state (Figure 2) that a restarted node learns again from the leader, so a change
   * of it alone is not worth a write; it rides along with the next entries or snapshot.
   */
  private hardStateChanged(): boolean {
    const p = this.prevHardState
    if (p.term !== this.currentTerm || p.vote !== this.vote) return true
    return p.commit !== this.log.committed && (this.log.hasUnstable() || this.log.pendingSnapshot !== undefined)
  }

  hardState(): HardState {
    return { term: this.currentTerm, vote: this.vote, commit: this.log.committed }
  }

  status(): Status {
    let progress: Status["progress"]
    if (this.currentRole === "leader") {
      progress = this.followers.map((pr) => pr.describe(roleOf(this.currentMembership, pr.id) ?? "removed"))
    }
    return {
      id: this.id,
      term: this.currentTerm,
      vote: this.vote,
      role: this.currentRole,
      leader: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      snapshotIndex: this.log.snapshotIndex(),
      membership: this.currentMembership,
      membershipIndex: this.membershipIndex,
      self: this.selfRole ?? (this.seenSelf ? "removed" : "joining"),
      progress,
      leadTransferee: this.leadTransferee,
      oversizedSnapshotBytes: this.currentOversizedSnapshotBytes(),
    }
  }

  /** Only while this node leads and that snapshot is still its newest: the problem may have passed. */
  private currentOversizedSnapshotBytes(): number {
    const o = this.oversizedSnapshot
    if (o === undefined || this.currentRole !== "leader" || this.log.snapshotIndex() !== o.index) return 0
    return o.bytes
  }

  termAt(index: LogIndex): Term | undefined {
    return this.log.term(index)
  }

  entryAt(index: LogIndex): Entry | undefined {
    return this.log.entryAt(index)
  }

  firstIndex(): LogIndex {
    return this.log.firstIndex()
  }

  lastIndex(): LogIndex {
    return this.log.lastIndex()
  }

  snapshot(): Snapshot | undefined {
    return this.log.snapshot
  }

  mostUpToDateFollower(): NodeId | undefined {
    if (this.currentRole !== "leader") return undefined
    let best: NodeId | undefined
    let bestMatch = -1
    for (const pr of this.voterProgress) {
      if (pr.match > bestMatch) {
        best = pr.id
        bestMatch = pr.match
      }
    }
    return best
  }

  // ---------------------------------------------------------------- roles

  private resetElectionTimeout(): void {
    this.randomizedElectionTimeout = this.cfg.electionTicks + this.rng.nextInt(this.cfg.electionTicks)
  }

  private reset(term: Term): void {
    if (term !== this.currentTerm) {
      this.currentTerm = term
      this.vote = 0
    }
    this.lead = 0
    this.leadReplaying = false
    this.electionElapsed = 0
    this.heartbeatElapsed = 0
    this.resetElectionTimeout()
    this.leadTransferee = 0
    this.votes.clear()
    this.readOnly.reset()
  }

  private becomeFollower(term: Term, leader: NodeId | 0): void {
    this.reset(term)
    this.lead = leader
    this.currentRole = "follower"
  }

  private becomePreCandidate(): void {
    // Thesis §9.6: neither term nor vote change until a majority says it would vote for us.
    this.votes.clear()
    this.lead = 0
    this.leadTransferee = 0
    this.readOnly.reset()
    this.electionElapsed = 0
    this.resetElectionTimeout()
    this.currentRole = "pre-candidate"
  }

  private becomeCandidate(): void {
    this.reset(this.currentTerm + 1)
    this.vote = this.id
    this.currentRole = "candidate"
  }

  private becomeLeader(): void {
    this.reset(this.currentTerm)
    this.lead = this.id
    this.currentRole = "leader"
    const last = this.log.lastIndex()
    this.termStartIndex = last + 1
    this.trackRetiring()
    for (const pr of this.followers) pr.resetForLeader(last)
    // A no-op of the new term lets earlier entries commit (§5.4.2) and ReadIndex start (§6.4).
    this.log.append({ term: this.currentTerm, index: last + 1, data: EMPTY_DATA })
    // Followers give way to a leader that replays from its first moment, not its first heartbeat.
    if (this.cfg.serviceReplaying?.() === true) this.broadcastHeartbeat(0)
  }

  /** §5.2 election, preceded by a pre-vote round when configured (thesis §9.6). */
  private campaign(kind: CampaignKind): void {
    if (this.currentRole === "leader" || !this.promotable()) return
    if (kind === "pre-vote") this.becomePreCandidate()
    else this.becomeCandidate()
    this.votes.set(this.id, true)
    if (voteResult(this.voters, this.votes) === "won") {
      if (kind === "pre-vote") this.campaign("election")
      else this.becomeLeader()
      return
    }
    this.campaignKind = kind
    this.requestVotes(kind, false)
  }

  /** Asks the voters (only those that have not answered, when `unanswered`) for this campaign's votes. */
  private requestVotes(kind: CampaignKind, unanswered: boolean): void {
    const lastLogIndex = this.log.lastIndex()
    const lastLogTerm = this.log.lastTerm()
    const backlog = kind === "pre-vote" ? this.backlog() : 0
    for (const to of this.voters) {
      if (to === this.id || (unanswered && this.votes.has(to))) continue
      if (kind === "pre-vote") {
        const m: PreVote = {
          type: "PreVote",
          from: this.id,
          to,
          term: this.currentTerm + 1,
          lastLogIndex,
          lastLogTerm,
          ...(backlog > 0 ? { backlog } : {}),
        }
        this.msgs.push(m)
      } else {
        const m: Vote = {
          type: "Vote",
          from: this.id,
          to,
          term: this.currentTerm,
          lastLogIndex,
          lastLogTerm,
          transfer: kind === "transfer",
        }
        this.msgs.push(m)
      }
    }
  }

  private inLease(): boolean {
    return this.lead !== 0 && this.electionElapsed < this.cfg.electionTicks
  }

  private quorumActive(): boolean {
    let active = this.selfRole === "voter" ? 1 : 0
    for (const pr of this.voterProgress) if (pr.recentActive) active++
    for (const pr of this.followers) pr.recentActive = false
    return active >= majority(this.voters.length)
  }

  private committedInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.currentTerm
  }

  // ---------------------------------------------------------------- elections

  private handleVoteRequest(m: PreVote | Vote): void {
    const isPreVote = m.type === "PreVote"
    // One vote per term (§5.2); a pre-vote for a future term promises nothing.
    const canVote =
      this.vote === m.from || (this.vote === 0 && this.lead === 0) || (isPreVote && m.term > this.currentTerm)
    // §5.4.1: only for a candidate whose log is at least as up to date as ours.
    if (canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm) && !(isPreVote && this.replaysLess(m))) {
      this.respondVote(m, true)
      if (!isPreVote) {
        this.electionElapsed = 0
        this.vote = m.from
      }
    } else {
      this.respondVote(m, false)
      // A candidate of our own term whose log is ahead of ours is the one who can win: we stand
      // down (our vote stays ours) and wait a whole timeout before campaigning again, so its next
      // term's request finds us a follower. Without this, a candidate that could not win (its log
      // behind its voters') campaigned in step with one that could, always first, and the group
      // stayed without a leader (sim-raft seed 60740916, pre-vote off).
      if (
        !isPreVote &&
        this.currentRole === "candidate" &&
        m.term === this.currentTerm &&
        this.log.isBehind(m.lastLogIndex, m.lastLogTerm)
      ) {
        this.becomeFollower(this.currentTerm, 0)
      }
    }
  }

  /** The service's backlog, in whole bytes (see `serviceBacklogBytes`). */
  private backlog(): number {
    return Math.max(0, Math.ceil(this.cfg.serviceBacklogBytes?.() ?? 0))
  }

  /**
   * Whether this node, with no leader and still replaying, has well less to replay than the
   * candidate asking for its pre-vote: then it leaves the campaign to itself (its own timer), or to
   * a peer with about as little, so that the group's leader serves sooner. It is refused nothing
   * for this by a peer with more to replay, and the rule ends with its replay, so someone is elected.
   */
  private replaysLess(m: PreVote): boolean {
    if (this.lead !== 0) return false
    const own = this.backlog()
    if (own === 0) return false
    return (m.backlog ?? 0) > own + Math.max(BACKLOG_MARGIN_BYTES, own / 4)
  }

  private respondVote(m: PreVote | Vote, granted: boolean): void {
    // A grant carries the campaign's term; a refusal our own, which may be news to the candidate.
    const term = granted ? m.term : this.currentTerm
    if (m.type === "PreVote") {
      const r: PreVoteResp = { type: "PreVoteResp", from: this.id, to: m.from, term, reject: !granted }
      this.msgs.push(r)
    } else {
      const r: VoteResp = { type: "VoteResp", from: this.id, to: m.from, term, reject: !granted }
      this.msgs.push(r)
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case "Append":
      case "Heartbeat":
      case "Snap":
        // Someone won this term.
        this.becomeFollower(this.currentTerm, m.from)
        this.stepFollower(m)
        return
      case "PreVoteResp":
        // Grants echo term + 1; refusals carry the voter's term, which equals ours here.
        if (this.currentRole === "pre-candidate" && (m.reject || m.term === this.currentTerm + 1)) this.poll(m)
        return
      case "VoteResp":
        if (this.currentRole === "candidate") this.poll(m)
        return
      default:
        return
    }
  }

  private poll(m: PreVoteResp | VoteResp): void {
    if (!this.votes.has(m.from)) this.votes.set(m.from, !m.reject)
    switch (voteResult(this.voters, this.votes)) {
      case "won":
        if (this.currentRole === "pre-candidate") this.campaign("election")
        else this.becomeLeader()
        return
      case "lost":
        this.becomeFollower(this.currentTerm, 0)
        return
      case "pending":
        return
    }
  }

  // ---------------------------------------------------------------- follower

  private stepFollower(m: Message): void {
    // §5.2: a term has at most one leader. Once ours is known, a leader's message from another
    // member of the same term cannot be genuine (a forgery, or a faulty peer): ignore it.
    if (
      (m.type === "Append" || m.type === "Heartbeat" || m.type === "Snap") &&
      this.lead !== 0 &&
      m.from !== this.lead
    ) {
      return
    }
    switch (m.type) {
      case "Append":
        this.electionElapsed = 0
        this.lead = m.from
        this.handleAppend(m)
        return
      case "Heartbeat":
        this.electionElapsed = 0
        this.lead = m.from
        this.handleHeartbeat(m)
        return
      case "Snap":
        this.electionElapsed = 0
        this.lead = m.from
        this.handleSnap(m)
        return
      case "TimeoutNow":
        // Thesis §3.10: campaign at once, skipping pre-vote; voters waive their lease for it. A
        // learner or removed member ignores it (campaign checks).
        this.campaign("transfer")
        return
      default:
        return
    }
  }

  /** §5.3 AppendEntries receiver. */
  private handleAppend(m: Append): void {
    if (!wellFormed(m)) return
    let prevIndex = m.prevIndex
    let prevTerm = m.prevTerm
    let entries = m.entries
    const committed = this.log.committed
    if (prevIndex < committed) {
      // Entries up to our commit index match every current leader's (§5.4.3); skip that part
      // (it may also reach below our snapshot, where terms are no longer known).
      const skip = committed - prevIndex
      if (skip >= entries.length) {
        this.sendAppendResp(m.from, committed, false, 0, 0)
        return
      }
      entries = entries.slice(skip)
      prevIndex = committed
      prevTerm = this.log.term(committed) ?? 0
    }
    const lastNew = this.log.maybeAppend(prevIndex, prevTerm, entries)
    const cut = this.log.takeTruncation()
    if (cut !== undefined) this.dropAcksFrom(cut)
    if (lastNew === undefined) {
      const hint = this.log.conflictHint(prevIndex)
      this.sendAppendResp(m.from, m.prevIndex, true, hint.conflictTerm, hint.conflictIndex)
      return
    }
    // Only up to the last entry this message vouches for: anything after it may be stale.
    this.log.commitTo(Math.min(m.commit, lastNew))
    this.sendAppendResp(m.from, lastNew, false, 0, 0)
  }

  private handleHeartbeat(m: Heartbeat): void {
    this.leadReplaying = m.replaying === true
    if (m.commitTerm === undefined) {
      // A leader of an earlier version, which vouches for the index alone.
      this.log.commitTo(Math.min(m.commit, this.log.lastIndex()))
    } else if (m.commit > this.log.committed && this.log.matchTerm(m.commit, m.commitTerm)) {
      // Our entry there is the leader's (§5.3 Log Matching), and so is everything before it. A log
      // that diverges below what the leader recorded as matched (a learner that lost its disk and
      // then took a stale leader's entries) commits nothing here; the leader's Appends repair it.
      this.log.commitTo(m.commit)
    }
    const r: HeartbeatResp = {
      type: "HeartbeatResp",
      from: this.id,
      to: m.from,
      term: this.currentTerm,
      context: m.context,
    }
    this.msgs.push(r)
  }

  /** Chunked InstallSnapshot receiver (§7): resumable at the next byte we expect. */
  private handleSnap(m: Snap): void {
    const meta = m.snapshot
    if (meta.index <= this.log.committed) {
      // Outdated (often a late chunk of an earlier transfer): our log already covers it; tell the
      // leader where we are instead. A transfer of a newer snapshot in progress carries on.
      this.snapshotReceiver.dropCoveredBy(this.log.committed)
      this.sendAppendResp(m.from, this.log.committed, false, 0, 0)
      return
    }
    if (this.log.matchTerm(meta.index, meta.term)) {
      // We hold the snapshot's last entry, so our log matches the leader's through it.
      this.log.commitTo(meta.index)
      this.snapshotReceiver.dropCoveredBy(this.log.committed)
      this.sendAppendResp(m.from, meta.index, false, 0, 0)
      return
    }
    const got = this.snapshotReceiver.receive(m)
    if (got === undefined) return
    if (typeof got === "number") {
      this.sendSnapResp(m, got)
      return
    }
    this.log.restore(got)
    this.dropAcksFrom(got.index + 1)
    this.sendAppendResp(m.from, got.index, false, 0, 0)
  }

  /**
   * Acks still waiting in `msgs` for the entries they vouch for to become durable: when those
   * entries are replaced before they are written (a newer leader's Append, a snapshot), the ack
   * would tell the old leader about entries this node never stored, so it is withdrawn (the
   * leader retries, as after any lost message).
   */
  private dropAcksFrom(firstGone: LogIndex): void {
    this.msgs = this.msgs.filter((m) => m.type !== "AppendResp" || m.reject || m.index < firstGone)
  }

  private sendSnapResp(m: Snap, offset: number): void {
    const r: SnapResp = {
      type: "SnapResp",
      from: this.id,
      to: m.from,
      term: this.currentTerm,
      snapshot: { index: m.snapshot.index, term: m.snapshot.term },
      offset,
    }
    this.msgs.push(r)
  }

  private sendAppendResp(
    to: NodeId,
    index: LogIndex,
    reject: boolean,
    conflictTerm: Term,
    conflictIndex: LogIndex,
  ): void {
    const r: AppendResp = {
      type: "AppendResp",
      from: this.id,
      to,
      term: this.currentTerm,
      index,
      reject,
      conflictTerm,
      conflictIndex,
    }
    this.msgs.push(r)
  }

  // ---------------------------------------------------------------- leader

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from)
    if (pr === undefined) return
    const retiring = this.retiring.get(m.from)
    if (retiring !== undefined) retiring.idleTicks = 0
    switch (m.type) {
      case "AppendResp":
        pr.recentActive = true
        this.handleAppendResp(m, pr)
        return
      case "HeartbeatResp":
        pr.recentActive = true
        this.handleHeartbeatResp(m, pr)
        return
      case "SnapResp":
        pr.recentActive = true
        this.handleSnapResp(m, pr)
        return
      default:
        // Append/Heartbeat/Snap of our own term cannot come from another leader (§5.2: one per term).
        return
    }
  }

  private handleAppendResp(m: AppendResp, pr: Progress): void {
    if (m.reject) {
      // Only the answer to what we last sent counts; older rejections are stale.
      if (pr.state === "snapshot") return
      if (pr.state === "replicate" ? m.index <= pr.match : m.index !== pr.next - 1) return
      if (pr.state === "probe" && m.conflictIndex <= pr.match && this.ticks < pr.matchResetAllowedAt) {
        // Too soon to lower match again: ask again after the next heartbeat answer, not at once.
        pr.probeSent = true
        pr.probeSentAt = -1
        return
      }
      if (pr.state === "probe" && m.conflictIndex <= pr.match) {
        // The answer to our current probe says the follower's log ends (or diverges) below what it
        // acknowledged: it lost its data, or a new member took this id. What we recorded is void;
        // probe from what it holds now, or it would be probed at match + 1 forever. A rejection
        // sent before the acknowledgement and overtaken by it looks the same, and nothing tells
        // the two apart; lowering match is always safe, but resending costs, so this happens at most
        // once per election timeout per follower (a real loss is repaired by the first one).
        pr.match = Math.max(0, m.conflictIndex - 1)
        pr.matchResetAllowedAt = this.ticks + this.cfg.electionTicks
      }
      // Fast back-off: skip the follower's whole conflicting term in one round trip.
      let next = m.conflictIndex
      if (m.conflictTerm !== 0) {
        const held = this.log.lastIndexWithTermAtMost(m.conflictTerm, m.index)
        if (held.index !== 0 && held.term === m.conflictTerm) next = held.index + 1
      }
      pr.becomeProbe()
      pr.next = Math.max(pr.match + 1, Math.min(next, m.index))
      return
    }
    // We never sent beyond our last index; such an answer is not about our log.
    if (m.index > this.log.lastIndex()) return
    const updated = pr.maybeUpdate(m.index)
    if (!updated && !(pr.state === "probe" && pr.match === m.index)) return
    switch (pr.state) {
      case "probe":
        pr.becomeReplicate()
        break
      case "replicate": {
        const sentAt = pr.inflights.freeLE(m.index)
        // Karn's rule holds by construction: an Append resent after a timeout was sent in probe state.
        if (sentAt >= 0) pr.sampleRtt(this.ticks - sentAt)
        break
      }
      case "snapshot":
        // Done once the follower holds the snapshot's index (installed it, or already had it).
        if (pr.snapshot !== undefined && pr.match >= pr.snapshot.index) {
          if (pr.match + 1 >= this.log.firstIndex()) pr.becomeReplicate()
          else pr.becomeProbe()
        }
        break
    }
    if (this.maybeCommit()) this.onCommitAdvanced()
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.sendTimeoutNow(m.from)
      if (this.removalCommitted()) this.becomeFollower(this.currentTerm, 0)
    } else if ((this.retiring.get(m.from)?.index ?? Number.POSITIVE_INFINITY) <= pr.match) {
      // A removed member now holds the entry that removed it: it knows, and needs nothing more.
      this.dropRetiring(m.from)
    }
  }

  private handleHeartbeatResp(m: HeartbeatResp, pr: Progress): void {
    pr.probeSent = false
    if (m.context !== 0) this.readOnly.ack(m.from, m.context, this.id, this.voters, this.readStates)
    // A whole heartbeat interval without progress while behind: take what was in flight as lost.
    // Counted in ticks, not answers: read rounds and co-hosted leaders' aligned heartbeats bring
    // answers far more often than once an interval.
    const snapshot = pr.state === "snapshot"
    const progress = snapshot ? pr.snapshotAcked : pr.match
    const behind = snapshot || pr.match < this.log.lastIndex()
    if (progress !== pr.stallMark || !behind) {
      pr.stallMark = progress
      pr.stallMarkedAt = this.ticks
      return
    }
    if (this.ticks - pr.stallMarkedAt < this.cfg.heartbeatTicks) return
    if (snapshot) pr.rewindSnapshot(pr.snapshotAcked)
    else if (pr.state === "replicate") pr.becomeProbe()
    pr.stallMark = progress
    pr.stallMarkedAt = this.ticks
  }

  private handleSnapResp(m: SnapResp, pr: Progress): void {
    const snap = pr.snapshot
    if (pr.state !== "snapshot" || snap === undefined) return
    if (m.snapshot.index !== snap.index || m.snapshot.term !== snap.term) return
    const offset = Math.min(m.offset, snap.data.length)
    if (offset > pr.snapshotAcked) {
      pr.snapshotAcked = offset
      pr.snapshotFastRewound = false
      if (pr.snapshotSent < offset) pr.rewindSnapshot(offset)
    } else if (offset === pr.snapshotAcked) {
      // No progress although more was sent: a chunk arrived out of order, so the one expected was
      // lost or overtaken. Resend from there at once, but only once until progress resumes.
      if (pr.snapshotSent > offset && !pr.snapshotFastRewound) {
        pr.snapshotFastRewound = true
        pr.rewindSnapshot(offset)
      }
    } else {
      // The follower is behind what we thought: it restarted (or this answer is older than one
      // already seen; then resending a few chunks is the whole cost). Resume where it says.
      pr.snapshotAcked = offset
      pr.rewindSnapshot(offset)
    }
  }

  /** §5.3/§5.4.2: commit the highest index stored on a majority, if it is from this term (Figure 8). */
  private maybeCommit(): boolean {
    const values = this.matchScratch
    values.length = 0
    // A leader outside its latest configuration (removing itself) does not count itself (thesis §4.2.2).
    if (this.selfRole === "voter") values.push(this.log.stableIndex)
    for (const pr of this.voterProgress) values.push(pr.match)
    if (values.length === 0) return false
    const index = quorumValue(values)
    if (index <= this.log.committed || this.log.term(index) !== this.currentTerm) return false
    return this.log.commitTo(index)
  }

  private onCommitAdvanced(): void {
    if (this.readOnly.hasDeferred() && this.committedInCurrentTerm()) {
      for (const requestId of this.readOnly.takeDeferred()) this.serveRead(requestId)
    }
    if (this.removalCommitted() && this.leadTransferee === 0) this.handOver()
  }

  // ---------------------------------------------------------------- membership

  /**
   * May this node campaign? A voter of its latest configuration may. So may a voter of the previous
   * one while the latest, which removed it, is uncommitted: its log may be the only one holding that
   * entry (it led when it proposed it), and the remaining voters, whose logs are behind, cannot win
   * without its vote, which it gives to none of them. Elected, it counts only the latest
   * configuration's voters, commits the change, then hands over like any removed leader. Any two
   * majorities of consecutive configurations overlap, so either view elects safely.
   */
  private promotable(): boolean {
    if (this.selfRole === "voter") return true
    if (this.membershipIndex <= this.log.committed) return false
    const previous = this.log.previousConfig()
    return previous !== undefined && roleOf(previous, this.id) === "voter"
  }

  /** Leader: the configuration that removed this node is committed; it must hand over and step down. */
  private removalCommitted(): boolean {
    return this.currentRole === "leader" && this.selfRole !== "voter" && this.log.committed >= this.membershipIndex
  }

  /**
   * Thesis §4.2.2: once its removal commits, a leader hands leadership to the most up-to-date voter
   * (TimeoutNow as soon as that voter holds the whole log) and steps down; proposals are refused
   * meanwhile, as during any transfer.
   */
  private handOver(): void {
    const target = this.mostUpToDateFollower()
    if (target === undefined) {
      this.becomeFollower(this.currentTerm, 0)
      return
    }
    this.leadTransferee = target
    this.electionElapsed = 0
    if (this.progress.get(target)?.match === this.log.lastIndex()) {
      this.sendTimeoutNow(target)
      this.becomeFollower(this.currentTerm, 0)
    }
  }

  /**
   * Brings the fields derived from the latest configuration up to date after the log changed: the
   * voter set, this node's role, one Progress per other member (kept for members that stay, so a
   * leader's view of them survives a change).
   */
  private refreshMembership(): void {
    if (this.log.configVersion === this.configVersion) return
    this.configVersion = this.log.configVersion
    const { membership, index } = this.log.latestConfig()
    const before = this.currentMembership
    this.currentMembership = membership
    this.membershipIndex = index
    this.voters = votersOf(membership)
    this.selfRole = roleOf(membership, this.id)
    // Added and removed again within one Append: the previous configuration shows it was a member.
    const previous = this.log.previousConfig()
    if (this.selfRole !== undefined || (previous !== undefined && roleOf(previous, this.id) !== undefined)) {
      this.seenSelf = true
    }
    const keep = new Set<NodeId>()
    for (const m of membership.members) if (m.id !== this.id) keep.add(m.id)
    this.trackRetiring()
    for (const id of this.retiring.keys()) keep.add(id)
    for (const id of [...this.progress.keys()]) if (!keep.has(id)) this.progress.delete(id)
    for (const id of keep) {
      // An id added again (a removed member's id reused) is a new member: what was recorded for the
      // old one says nothing about its log.
      const readded = roleOf(before, id) === undefined && roleOf(membership, id) !== undefined
      if (this.progress.has(id) && !readded) continue
      const pr = new Progress(id, this.cfg.maxInflightMessages)
      // A new member (or an id added again) starts from nothing known about its log; the first
      // Append carries the entry that added it, and its answer says where its log really ends.
      pr.resetForLeader(Math.max(this.log.lastIndex() - 1, this.log.snapshotIndex()))
      this.progress.set(id, pr)
    }
    this.rebuildFollowers()
    if (this.leadTransferee !== 0 && !this.voters.includes(this.leadTransferee)) this.leadTransferee = 0
  }

  private rebuildFollowers(): void {
    this.followers = [...this.progress.values()].sort((a, b) => a.id - b.id)
    this.voterProgress = this.followers.filter((pr) => roleOf(this.currentMembership, pr.id) === "voter")
  }

  /** Members the latest configuration entry dropped, which may not know it yet. */
  private trackRetiring(): void {
    this.retiring.clear()
    const previous = this.log.previousConfig()
    if (previous === undefined) return
    for (const m of previous.members) {
      if (m.id !== this.id && roleOf(this.currentMembership, m.id) === undefined) {
        this.retiring.set(m.id, { index: this.membershipIndex, idleTicks: 0 })
      }
    }
  }

  private dropRetiring(id: NodeId): void {
    this.retiring.delete(id)
    this.progress.delete(id)
    this.rebuildFollowers()
  }

  /** A removed member that stays silent for two election timeouts is not waited for any longer. */
  private tickRetiring(): void {
    if (this.retiring.size === 0) return
    for (const [id, r] of this.retiring) {
      if (++r.idleTicks > 2 * this.cfg.electionTicks) this.dropRetiring(id)
    }
  }

  /**
   * An Append (or probe) unanswered for longer than the follower's measured round trip allows is
   * taken as lost: it is sent again (from match + 1, as a probe) at the next flush rather than on
   * the next heartbeat answer, which can be two heartbeat intervals away. Without pipelined traffic
   * behind it (a follower whose last Append was lost, one client writing), only this repairs the
   * loss in about one round trip. A timeout of a heartbeat interval or more leaves the repair to the
   * heartbeat, as before any round trip was measured.
   */
  private resendUnacknowledged(): void {
    for (const pr of this.followers) {
      const timeout = pr.resendTimeoutTicks()
      if (timeout >= this.cfg.heartbeatTicks) continue
      if (pr.state === "replicate") {
        const sentAt = pr.inflights.oldestSentAt()
        if (sentAt < 0 || this.ticks - sentAt < timeout) continue
        pr.resends++
        pr.becomeProbe()
      } else if (pr.state === "probe" && pr.probeSent && pr.probeSentAt >= 0) {
        if (this.ticks - pr.probeSentAt < timeout) continue
        pr.resends++
        pr.probeSent = false
        pr.probeSentAt = -1
      }
    }
  }

  /**
   * Sends what each follower can take now. Run when a Ready is assembled, so proposals and acks
   * that arrived since the previous Ready travel together in one Append per follower.
   */
  private flush(): void {
    if (this.currentRole !== "leader") return
    const last = this.log.lastIndex()
    for (const pr of this.followers) {
      const to = pr.id
      switch (pr.state) {
        case "replicate":
          while (!pr.inflights.full() && pr.next <= last && pr.state === "replicate") this.sendAppend(to, pr)
          break
        case "probe":
          if (!pr.probeSent && pr.next <= last) this.sendAppend(to, pr)
          break
        case "snapshot":
          this.sendSnapshotChunks(to, pr)
          break
      }
    }
    const round = this.readOnly.takeOpen(this.log.committed)
    if (round !== undefined) this.broadcastHeartbeat(round)
  }

  private sendAppend(to: NodeId, pr: Progress): void {
    const prevIndex = pr.next - 1
    const prevTerm = this.log.term(prevIndex)
    if (prevTerm === undefined) {
      // The entries it needs are compacted away: send the snapshot (§7).
      const snap = this.log.snapshot
      if (snap === undefined) throw new Error(`raft: no snapshot to send to ${to} (next ${pr.next})`)
      if (snap.data.length > this.limits.maxSnapshotBytes) {
        // Every follower refuses a snapshot past the limit they share, so sending it would only
        // waste bandwidth. The follower stays behind (retried each heartbeat, in case the service
        // compacts to a smaller one) and status() shows why; the shell reports it loudly.
        this.oversizedSnapshot = { index: snap.index, bytes: snap.data.length }
        pr.becomeProbe()
        pr.probeSent = true
        return
      }
      pr.becomeSnapshot(snap)
      this.sendSnapshotChunks(to, pr)
      return
    }
    const entries = this.log.slice(pr.next, this.log.lastIndex() + 1, this.cfg.maxAppendBytes)
    const m: Append = {
      type: "Append",
      from: this.id,
      to,
      term: this.currentTerm,
      prevIndex,
      prevTerm,
      entries,
      commit: this.log.committed,
    }
    this.msgs.push(m)
    const lastEntry = entries[entries.length - 1]
    if (pr.state === "replicate" && lastEntry !== undefined) {
      // Pipelining: assume success and move on; a rejection or a stall falls back to probing.
      pr.next = lastEntry.index + 1
      pr.inflights.add(lastEntry.index, this.ticks)
    } else if (pr.state === "probe") {
      pr.probeSent = true
      pr.probeSentAt = this.ticks
    }
  }

  /** Go-back-N over the snapshot bytes, a bounded window of chunks at a time. */
  private sendSnapshotChunks(to: NodeId, pr: Progress): void {
    const snap = pr.snapshot
    if (snap === undefined) return
    const total = snap.data.length
    const chunkBytes = this.cfg.snapshotChunkBytes
    const window = chunkBytes * this.limits.snapshotChunksInflight
    const meta =
      snap.membership === undefined
        ? { index: snap.index, term: snap.term }
        : { index: snap.index, term: snap.term, membership: snap.membership }
    while (!pr.snapshotLastSent && pr.snapshotSent - pr.snapshotAcked < window) {
      const offset = pr.snapshotSent
      const end = Math.min(offset + chunkBytes, total)
      const m: Snap = {
        type: "Snap",
        from: this.id,
        to,
        term: this.currentTerm,
        snapshot: meta,
        offset,
        total,
        chunk: snap.data.subarray(offset, end),
        done: end === total,
      }
      this.msgs.push(m)
      pr.snapshotSent = end
      pr.snapshotLastSent = end === total
    }
  }

  /**
   * Every heartbeat, a read round's too, starts the interval again: each one keeps followers from
   * campaigning and carries the commit, so a leader serving reads sends no others.
   */
  private broadcastHeartbeat(context: number): void {
    this.heartbeatElapsed = 0
    const commit = this.log.committed
    // Said only while true: the heartbeat of a leader that is not replaying is as it always was.
    const replaying = this.cfg.serviceReplaying?.() === true
    for (const pr of this.followers) {
      // Never beyond what the follower is known to hold: its log may still diverge past match. With
      // that entry's term, which the follower checks against its own; below our snapshot, where
      // terms are gone, nothing (that follower catches up through Appends or the snapshot).
      const at = Math.min(pr.match, commit)
      const atTerm = this.log.term(at)
      const m: Heartbeat = {
        type: "Heartbeat",
        from: this.id,
        to: pr.id,
        term: this.currentTerm,
        commit: atTerm === undefined ? 0 : at,
        context,
        commitTerm: atTerm ?? 0,
        ...(replaying ? { replaying } : {}),
      }
      this.msgs.push(m)
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.msgs.push({ type: "TimeoutNow", from: this.id, to, term: this.currentTerm })
  }
}

const NO_MESSAGES: readonly Message[] = Object.freeze([])

/** A leader's replication traffic: it promises nothing about the sender's own disk. */
const isReplication = (m: Message): boolean => m.type === "Append" || m.type === "Heartbeat" || m.type === "Snap"

/**
 * Splits messages into those that may leave before the sender's write is durable and the rest:
 * `replication` lets a leader's Append, Heartbeat and Snap go (its term and vote are durable);
 * `heartbeatResps` lets answers to heartbeats go (the term they carry is durable, and they vouch for
 * no entry: they only tell the leader it is still followed, which ReadIndex rounds wait for). The
 * usual batch goes whole: then the array is handed out as it is, with no copy.
 */
const splitEarly = (
  msgs: Message[],
  replication: boolean,
  heartbeatResps: boolean,
): readonly [readonly Message[], readonly Message[]] => {
  const early = (m: Message): boolean =>
    (replication && isReplication(m)) || (heartbeatResps && m.type === "HeartbeatResp")
  let k = 0
  while (k < msgs.length && early(msgs[k] as Message)) k++
  if (k === msgs.length) return [msgs, NO_MESSAGES]
  if (k === 0 && !msgs.some(early)) return [NO_MESSAGES, msgs]
  const now: Message[] = msgs.slice(0, k)
  const later: Message[] = []
  for (; k < msgs.length; k++) {
    const m = msgs[k] as Message
    if (early(m)) now.push(m)
    else later.push(m)
  }
  return [now, later]
}

/** Entries follow prevIndex without gaps, with terms that never decrease nor exceed the sender's. */
const wellFormed = (m: Append): boolean => {
  let expected = m.prevIndex + 1
  let lastTerm = m.prevTerm
  for (const e of m.entries) {
    if (e.index !== expected || e.term < lastTerm || e.term > m.term) return false
    expected++
    lastTerm = e.term
  }
  return lastTerm <= m.term
}

const validateConfig = (c: RaftConfig): void => {
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new Error(`raft config: ${name} must be a positive integer, got ${v}`)
  }
  positive("id", c.id)
  positive("electionTicks", c.electionTicks)
  positive("heartbeatTicks", c.heartbeatTicks)
  positive("maxInflightMessages", c.maxInflightMessages)
  positive("maxAppendBytes", c.maxAppendBytes)
  positive("snapshotChunkBytes", c.snapshotChunkBytes)
  if (new Set(c.peers).size !== c.peers.length) throw new Error("raft config: duplicate peer ids")
  for (const p of c.peers) positive("peer id", p)
  // Empty: a node joining an existing group, which learns its membership from the leader.
  if (c.peers.length > 0 && !c.peers.includes(c.id)) {
    throw new Error(`raft config: peers must include this node (${c.id})`)
  }
}
