export {
  KeyTooLarge,
  type KvClientError,
  type KvClientShape,
  OutcomeUnknown,
  SessionExpired,
  Timeout,
  ValueTooLarge,
} from "@kv/kvraft"
export { type Config, ControllerError } from "@kv/shardctrler"
export { type Admin, type ConnectAdminOptions, connectAdmin, KvAdmin } from "./admin.ts"
export { type Clerk, type ConnectOptions, connect, Kv } from "./clerk.ts"
