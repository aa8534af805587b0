export * from "./core/index.ts"
export {
  AlreadyMember,
  ChangeInProgress,
  LastVoter,
  type MembershipChangeError,
  NodeStopped,
  NotLeader,
  ProposalTooLarge,
  UnknownMember,
} from "./node/errors.ts"
export {
  type ApplyEvent,
  exitOnFatal,
  type MemberStatus,
  type MembershipChangeResult,
  makeRaftNode,
  type ProposeResult,
  RaftNode,
  type RaftNodeConfig,
  type RaftNodeShape,
  type RaftStatus,
  raftDefaults,
} from "./node/raftNode.ts"
export { makeReadyRounds, ReadyRounds, type ReadyRoundsShape, type RoundMember } from "./node/readyRounds.ts"
export { RaftStatusMethod, raftStatusFields } from "./node/statusMethod.ts"
export { isRaftReply, RAFT_CHANNEL } from "./node/wire.ts"
export {
  type FileStorageOptions,
  type InlineFlushOptions,
  initialHardState,
  MemoryDisk,
  type MemoryStorageOptions,
  openFileStorage,
  openMemoryStorage,
  type PersistedState,
  type RaftStorage,
  SHARED_WAL_DIR,
  Storage,
  StorageCorrupt,
  type WriteHint,
} from "./storage/index.ts"
