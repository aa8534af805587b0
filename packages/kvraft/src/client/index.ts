export { KvClient, type KvClientOptions, type KvClientShape, makeKvClient } from "./client.ts"
export {
  type CasResult,
  CrossShard,
  casResult,
  fromCoordinationErrorReply,
  InvalidRequest,
  type KvCoordinationError,
  type KvWriteCondition,
  type ListOptions,
  type ListPage,
  type TxnRequest,
  type TxnResult,
  toCondition,
  txnOp,
  txnResult,
} from "./coordination.ts"
export {
  fromKvErrorReply,
  KeyTooLarge,
  type KvClientError,
  OutcomeUnknown,
  SessionExpired,
  Timeout,
  ValueTooLarge,
} from "./errors.ts"
export { type LeaderCaller, type LeaderCallerOptions, makeLeaderCaller } from "./leaderCaller.ts"
