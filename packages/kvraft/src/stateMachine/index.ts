export {
  compareOps,
  compareTargets,
  decodeCommand,
  decodeLeaderCommand,
  encodeCommand,
  encodeLeaderCommand,
  isCondition,
  isLeaderCommand,
  type KvCommand,
  type KvCompare,
  type KvCompareOp,
  type KvCompareTarget,
  type KvCondition,
  type KvLeaderCommand,
  type KvOp,
  type KvTxnOp,
  opKeys,
} from "./command.ts"
export { readCommonCommand } from "./commonCommand.ts"
export {
  finishSlicedJob,
  holds,
  type KvListEntry,
  type KvListOptions,
  type KvListPage,
  KvStateMachine,
  maxListBytes,
  maxListLimit,
  maxTxnOps,
  type SlicedJob,
  type SnapshotJob,
  type SnapshotSlice,
  slicedJobOf,
  snapshotJobOf,
} from "./kvStateMachine.ts"
export { defaultKvLimits, type KvLimits, resolveKvLimits, type SessionLimits } from "./limits.ts"
export { u16, u32 } from "./msgpackBytes.ts"
export { compareKeys, OrderedKeys } from "./orderedKeys.ts"
export { answerRead, type KvReadAnswer, type KvReadRequest, listOptions } from "./reads.ts"
export {
  type KvEntry,
  type KvError,
  type KvErrorKind,
  type KvReply,
  type KvResult,
  kvError,
  okResult,
  type SessionResult,
} from "./result.ts"
export {
  ClientSessions,
  type ExpiredSessionData,
  type ExpiredSessionTuple,
  type SessionData,
  type SessionsData,
  type SessionsSnapshot,
  type SessionTuple,
  type SessionVerdict,
} from "./sessions.ts"
export { utf8ByteLength } from "./utf8.ts"
