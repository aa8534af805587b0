export {
  BadMemberAddress,
  type CasResult,
  CatchUpTimeout,
  CrossShard,
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
  type ListOptions,
  type ListPage,
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
} from "@kv/kvraft"
export { AlreadyMember, ChangeInProgress, LastVoter, NotLeader, UnknownMember } from "@kv/raft"
export { type Config, ControllerError } from "@kv/shardctrler"
export { type Admin, type ConnectAdminOptions, connectAdmin, KvAdmin } from "./admin.ts"
export { type Clerk, type ConnectOptions, connect, Kv } from "./clerk.ts"
export type { KvShape, ListAllOptions, WriteCondition } from "./coordination.ts"
export {
  type ConnectMembersOptions,
  connectMembers,
  KvMembers,
  type MemberGroup,
  type Members,
  type MembersShape,
} from "./members.ts"
