export {
  KeyTooLarge,
  type KvClientError,
  type KvClientShape,
  SessionExpired,
  Timeout,
  ValueTooLarge,
} from "@kv/kvraft"
export { type Clerk, type ConnectOptions, connect, Kv } from "./clerk.ts"
