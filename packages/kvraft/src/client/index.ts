export { KvClient, type KvClientOptions, type KvClientShape, type KvGroupClientShape, makeKvClient } from "./client.ts"
export {
  type CasResult,
  CrossShard,
  casResult,
  fromCoordinationErrorReply,
  InvalidRequest,
  type KvCoordinationError,
  type KvWriteCondition,
  LeaseNotFound,
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
export { type CallWatch, type LeaderCaller, type LeaderCallerOptions, makeLeaderCaller } from "./leaderCaller.ts"
export { type KvLeasesShape, type LeaseGrant, type LeaseStatus, makeKvLeases } from "./leases.ts"
export {
  campaign,
  type Holder,
  holder,
  type Lock,
  type LockOptions,
  LockTimeout,
  lock,
  lockPrefix,
  proclaim,
} from "./locks.ts"
