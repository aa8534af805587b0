export { KvClient, type KvClientOptions, type KvClientShape, makeKvClient } from "./client.ts"
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
