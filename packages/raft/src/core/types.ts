/**
 * The vocabulary of the pure Raft core: log records, persistent state, messages between peers and
 * the Ready batch handed to the shell.
 *
 * Ids, terms and indexes are plain number aliases rather than branded types so that the records
 * the storage layer reads back (declared with `number` fields) pass into the core without casts.
 */

export type NodeId = number
export type Term = number
export type LogIndex = number

export type Role = "follower" | "pre-candidate" | "candidate" | "leader"

export interface Entry {
  readonly term: Term
  readonly index: LogIndex
  /**
   * Empty only for the no-op a new leader appends and for configuration entries; `propose()` never
   * accepts empty data, so a service skips every empty entry.
   */
  readonly data: Uint8Array
  /**
   * A configuration entry: the group's whole membership from this index on. Every node uses the
   * latest one in its log, committed or not (thesis §4.1). Absent on commands and no-ops (and on
   * every entry written before membership changes existed).
   */
  readonly config?: Membership
}

export type MemberRole = "voter" | "learner"

export interface Member {
  readonly id: NodeId
  readonly role: MemberRole
  /**
   * Where the shell reaches this member ("host:port"), carried so every replica learns where a new
   * member lives. Opaque to the core; "" when the shell knows it from elsewhere (bootstrap peers).
   */
  readonly address: string
}

/**
 * A group's configuration: voters elect and make up every quorum (commit, ReadIndex, check-quorum);
 * learners receive the log and snapshots and count for nothing. Sorted by id, ids unique.
 */
export interface Membership {
  readonly members: readonly Member[]
}

/** What must be durable before any message that depends on it leaves the node. */
export interface HardState {
  readonly term: Term
  /** The candidate this node voted for in `term`; 0 if none. */
  readonly vote: NodeId | 0
  readonly commit: LogIndex
}

export interface SnapshotMeta {
  /** Last log index the snapshot covers. */
  readonly index: LogIndex
  /** Term of the entry at `index`. */
  readonly term: Term
  /**
   * The membership in force at `index`, which the snapshot replaces the log of. Absent in snapshots
   * written before membership changes existed (and in a SnapResp): the node then uses its bootstrap
   * peers until its log says otherwise.
   */
  readonly membership?: Membership
}

export interface Snapshot extends SnapshotMeta {
  readonly data: Uint8Array
}

interface MessageHeader {
  readonly from: NodeId
  readonly to: NodeId
  /** The sender's term; for PreVote the term the sender would campaign in (its term + 1). */
  readonly term: Term
}

/** Thesis §9.6: asks whether the receiver would vote, without anyone changing term. */
export interface PreVote extends MessageHeader {
  readonly type: "PreVote"
  readonly lastLogIndex: LogIndex
  readonly lastLogTerm: Term
  /** Bytes of log the candidate's service still has to replay before it serves; absent: none. */
  readonly backlog?: number
}

/** Granted: `term` echoes the PreVote's term. Rejected: `term` is the voter's own term. */
export interface PreVoteResp extends MessageHeader {
  readonly type: "PreVoteResp"
  readonly reject: boolean
}

/** RequestVote (§5.2). */
export interface Vote extends MessageHeader {
  readonly type: "Vote"
  readonly lastLogIndex: LogIndex
  readonly lastLogTerm: Term
  /** The campaign was started by TimeoutNow: voters grant it even while they hear from a leader. */
  readonly transfer: boolean
}

export interface VoteResp extends MessageHeader {
  readonly type: "VoteResp"
  readonly reject: boolean
}

/** AppendEntries (§5.3). */
export interface Append extends MessageHeader {
  readonly type: "Append"
  readonly prevIndex: LogIndex
  readonly prevTerm: Term
  readonly entries: readonly Entry[]
  /** The leader's commit index. */
  readonly commit: LogIndex
}

export interface AppendResp extends MessageHeader {
  readonly type: "AppendResp"
  /**
   * Accepted: the follower's log matches the leader's up to `index`.
   * Rejected: the `prevIndex` of the Append that did not match.
   */
  readonly index: LogIndex
  readonly reject: boolean
  /** On reject: the follower's term at `prevIndex`, or 0 when its log is shorter than that. */
  readonly conflictTerm: Term
  /** On reject: the first index of `conflictTerm` in the follower's log, or its last index + 1. */
  readonly conflictIndex: LogIndex
}

export interface Heartbeat extends MessageHeader {
  readonly type: "Heartbeat"
  /** min(the follower's match index, the leader's commit): never beyond what the follower is known to hold. */
  readonly commit: LogIndex
  /** ReadIndex round being confirmed (§6.4), 0 if none. */
  readonly context: number
  /**
   * The term of the leader's entry at `commit`: the follower commits only if its own entry there
   * has it. Absent from leaders of earlier versions.
   */
  readonly commitTerm?: Term
  /** Present (true) while the leader's service still applies the log it restarted with. */
  readonly replaying?: true
}

export interface HeartbeatResp extends MessageHeader {
  readonly type: "HeartbeatResp"
  /** Echoes the Heartbeat's context. */
  readonly context: number
}

/** One chunk of InstallSnapshot, sent in order; a transfer resumes at the offset the follower acked. */
export interface Snap extends MessageHeader {
  readonly type: "Snap"
  readonly snapshot: SnapshotMeta
  /** Byte offset of `chunk` in the snapshot data. */
  readonly offset: number
  /** Length of the whole snapshot data in bytes. */
  readonly total: number
  readonly chunk: Uint8Array
  /** The last chunk: offset + chunk.length === total. */
  readonly done: boolean
}

/**
 * Acknowledges snapshot chunks: `offset` is the next byte the follower expects (0 = start over).
 * Once the last chunk is in, or if the follower's log already covers the snapshot, the follower
 * answers with an AppendResp instead, carrying the index its log now matches up to.
 */
export interface SnapResp extends MessageHeader {
  readonly type: "SnapResp"
  readonly snapshot: SnapshotMeta
  readonly offset: number
}

/** Leadership transfer (thesis §3.10): the receiver campaigns at once. */
export interface TimeoutNow extends MessageHeader {
  readonly type: "TimeoutNow"
}

export type Message =
  | PreVote
  | PreVoteResp
  | Vote
  | VoteResp
  | Append
  | AppendResp
  | Heartbeat
  | HeartbeatResp
  | Snap
  | SnapResp
  | TimeoutNow

export type MessageType = Message["type"]

/** A ReadIndex request is safe to serve once the state machine has applied `index`. */
export interface ReadState {
  readonly requestId: number
  readonly index: LogIndex
}

export interface SoftState {
  readonly role: Role
  readonly leader: NodeId | 0
}

/**
 * Work for the shell, in this order: send `messages` (at once, or later: they wait for nothing);
 * persist `snapshot`, then `hardState` and `entries` (one fsync); then send `messagesAfterPersist`;
 * then call `advance(ready)`. `snapshot` is installed once it is durable, `committedEntries` applied
 * and `readStates` answered at any point before `advance` (they wait for none of this Ready's
 * writes). Only one Ready is outstanding at a time; the core takes inputs meanwhile, and what they
 * make possible without the outstanding writes can be taken at once with `takeDuringFlush`.
 */
export interface Ready {
  /**
   * Persist if defined: term or vote changed, or entries / a snapshot are to be persisted (then it
   * carries the latest commit index). A commit index that alone moved is not written: it is
   * volatile state that a restarted node learns again from the leader.
   */
  readonly hardState: HardState | undefined
  /** Persist: an entry at index i replaces every stored entry >= i. */
  readonly entries: readonly Entry[]
  /** Received from a leader: persist (dropping the log it covers) and install in the service. */
  readonly snapshot: Snapshot | undefined
  /**
   * May be sent before this Ready is persisted, so the followers' disk writes overlap the
   * leader's own (thesis §10.2.1). Only a leader's Append, Heartbeat and Snap, when this Ready
   * changes neither term nor vote and installs no snapshot: they promise nothing about the sender's
   * disk (the leader counts its own entries toward a commit only once `advance` says they are
   * durable), and the term they carry was made durable by an earlier Ready. And any node's
   * HeartbeatResp when this Ready does not change its term: it vouches for no entry, and a ReadIndex
   * round waits for it. Empty otherwise.
   */
  readonly messages: readonly Message[]
  /**
   * Send only after `hardState`, `entries` and `snapshot` are durable: everything else — votes and
   * vote replies, append and snapshot acknowledgements, anything else from a follower or candidate,
   * and every message in a Ready that changes the term (a leader's too, or its vote). Each may
   * promise what this Ready persists (a vote, the entries it acknowledges, the term it carries).
   */
  readonly messagesAfterPersist: readonly Message[]
  /**
   * Apply in order; every one was durable before this Ready was made, so they may be applied
   * while this Ready's own writes are still on their way to the disk.
   */
  readonly committedEntries: readonly Entry[]
  readonly readStates: readonly ReadState[]
  /** Defined when the role or the known leader changed. */
  readonly softState: SoftState | undefined
}

/**
 * What a node may act on while its outstanding Ready is still being persisted (`takeDuringFlush`):
 * none of it depends on that Ready's writes, nor on anything else not yet durable. Each part is
 * handed out once: the next Ready holds only what was not taken.
 */
export interface FlushWork {
  /**
   * Apply now, in order, after the outstanding Ready's `committedEntries`: committed (on a quorum)
   * and durable here, and not handed out before. The outstanding Ready's own entries are not durable
   * yet, so none of them is ever in this list. The core counts these applied at once.
   */
  readonly committedEntries: readonly Entry[]
  /** Confirmed by a quorum since the Ready was made: answer now (when applied reaches `index`). */
  readonly readStates: readonly ReadState[]
  /**
   * Send now, by the rule of a Ready's early `messages` with "durable" meaning on disk already (not
   * merely in the outstanding Ready): a leader's Append, Heartbeat and Snap when its current term and
   * vote are durable and no snapshot is pending, and HeartbeatResps when the current term is durable.
   * Everything else (entry acks, votes, a term or vote on its way to the disk) waits for a Ready.
   */
  readonly messages: readonly Message[]
}

export type ProgressState = "probe" | "replicate" | "snapshot"

export interface PeerProgress {
  readonly id: NodeId
  /** "removed": dropped by the latest configuration, still sent the log until it holds that entry. */
  readonly role: MemberRole | "removed"
  readonly match: LogIndex
  readonly next: LogIndex
  readonly state: ProgressState
  readonly recentActive: boolean
  /** Appends sent and not yet acknowledged (replicate state). */
  readonly inflight: number
}

export interface Status {
  readonly id: NodeId
  readonly term: Term
  readonly vote: NodeId | 0
  readonly role: Role
  readonly leader: NodeId | 0
  readonly commit: LogIndex
  readonly applied: LogIndex
  readonly lastIndex: LogIndex
  readonly snapshotIndex: LogIndex
  /** The latest configuration in this node's log (committed or not), else its snapshot's, else the bootstrap peers. */
  readonly membership: Membership
  /** Index of the configuration entry that set `membership`; 0 when it came from a snapshot or the bootstrap peers. */
  readonly membershipIndex: LogIndex
  /**
   * This node in its own membership. "removed": not in it although it once was (it no longer
   * campaigns); "joining": never yet a member (started to join an existing group, waiting for the
   * leader's log).
   */
  readonly self: MemberRole | "removed" | "joining"
  /** Followers' and learners' replication state; only on the leader. */
  readonly progress: readonly PeerProgress[] | undefined
  /** The follower leadership is being handed to, 0 if none. */
  readonly leadTransferee: NodeId | 0
  /**
   * Leader only: bytes of its snapshot when a lagging follower needs it and it is larger than
   * maxSnapshotBytes (followers refuse it, so it is not sent: that follower cannot catch up); else 0.
   */
  readonly oversizedSnapshotBytes: number
}
