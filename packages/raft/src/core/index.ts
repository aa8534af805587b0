/** Public surface of the pure Raft core. */
export {
  DEFAULT_MAX_ENTRY_BYTES,
  MAX_TERM_AHEAD,
  MAX_TERM_OR_INDEX,
  maxEntryBytesFor,
  messageWithinBounds,
  RAFT_MESSAGE_OVERHEAD_BYTES,
} from "./bounds.ts"
export { RaftLog } from "./log.ts"
export {
  applyChange,
  type ChangeRefusal,
  describeMembership,
  EMPTY_MEMBERSHIP,
  learnersOf,
  type MembershipChange,
  roleOf,
  sameMembership,
  votersMembership,
  votersOf,
} from "./membership.ts"
export { Inflights, Progress } from "./progress.ts"
export { majority, quorumValue, type VoteResult, voteResult } from "./quorum.ts"
export {
  BACKLOG_MARGIN_BYTES,
  createRaft,
  type MembershipProposal,
  type ProposeResult,
  type RaftConfig,
  type RaftCore,
  type RestoredState,
} from "./raft.ts"
export { ReadOnly } from "./readOnly.ts"
export { mixSeed, Rng } from "./rng.ts"
export { SnapshotReceiver } from "./snapshotReceiver.ts"
export type {
  Append,
  AppendResp,
  Entry,
  FlushWork,
  HardState,
  Heartbeat,
  HeartbeatResp,
  LogIndex,
  Member,
  MemberRole,
  Membership,
  Message,
  MessageType,
  NodeId,
  PeerProgress,
  PreVote,
  PreVoteResp,
  ProgressState,
  ReadState,
  Ready,
  Role,
  Snap,
  SnapResp,
  Snapshot,
  SnapshotMeta,
  SoftState,
  Status,
  Term,
  TimeoutNow,
  Vote,
  VoteResp,
} from "./types.ts"
