export {
  BadMemberAddress,
  CatchUpTimeout,
  IdUsedBefore,
  KeyTooLarge,
  type KvClientError,
  type KvClientShape,
  MemberAddressMismatch,
  type MemberChangeFailure,
  type MemberInfo,
  type MemberList,
  OutcomeUnknown,
  SessionExpired,
  Timeout,
  ValueTooLarge,
} from "@kv/kvraft"
export { AlreadyMember, ChangeInProgress, LastVoter, NotLeader, UnknownMember } from "@kv/raft"
export { type Config, ControllerError } from "@kv/shardctrler"
export { type Admin, type ConnectAdminOptions, connectAdmin, KvAdmin } from "./admin.ts"
export { type Clerk, type ConnectOptions, connect, Kv } from "./clerk.ts"
export {
  type ConnectMembersOptions,
  connectMembers,
  KvMembers,
  type MemberGroup,
  type Members,
  type MembersShape,
} from "./members.ts"
