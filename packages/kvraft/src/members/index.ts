export { type MemberAdminOptions, memberAddress, serveMemberAdmin } from "./admin.ts"
export {
  type MemberChangeFailure,
  type MemberClientOptions,
  type MemberClientShape,
  makeMemberClient,
} from "./client.ts"
export { BadMemberAddress, IdUsedBefore } from "./errors.ts"
export * from "./protocol.ts"
export {
  CatchUpTimeout,
  MemberAddressMismatch,
  type ReplaceError,
  type ReplaceOptions,
  type ReplaceProgress,
  replaceMember,
} from "./replace.ts"
