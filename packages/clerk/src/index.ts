export {
  BadMemberAddress,
  type CasResult,
  CatchUpTimeout,
  Compacted,
  CrossShard,
  type Holder,
  IdUsedBefore,
  InvalidRequest,
  KeyTooLarge,
  type KvClientError,
  type KvClientShape,
  type KvCompare,
  type KvCompareOp,
  type KvCompareTarget,
  type KvCoordinationError,
  type KvEntry,
  type KvListEntry,
  type KvTxnOp,
  type LeaseGrant,
  LeaseNotFound,
  type LeaseStatus,
  type ListOptions,
  type ListPage,
  LockTimeout,
  MemberAddressMismatch,
  type MemberChangeFailure,
  type MemberInfo,
  type MemberList,
  OutcomeUnknown,
  SessionExpired,
  Timeout,
  type TxnRequest,
  type TxnResult,
  ValueTooLarge,
  type WatchError,
  type WatchEvent,
  type WatchItem,
  type WatchOptions,
  type WatchProgress,
  WatchRefused,
  type WatchTarget,
} from "@kv/kvraft"
export { AlreadyMember, ChangeInProgress, LastVoter, NotLeader, UnknownMember } from "@kv/raft"
export { type Config, ControllerError } from "@kv/shardctrler"
export { type Admin, type ConnectAdminOptions, connectAdmin, KvAdmin } from "./admin.ts"
export {
  type Clerk,
  type ConnectOptions,
  connect,
  Kv,
  type Leadership,
  type LeaseHandle,
  type LockHandle,
} from "./clerk.ts"
export type { KvShape, LeaseCallError, LeaseOption, ListAllOptions, WriteCondition } from "./coordination.ts"
export { KvraftOnly, LeaseLost } from "./errors.ts"
export type { KeptLease } from "./leaseKeeper.ts"
export type { HeldLock, LockOptions } from "./locks.ts"
export {
  type ConnectMembersOptions,
  connectMembers,
  KvMembers,
  type MemberGroup,
  type Members,
  type MembersShape,
} from "./members.ts"
