export { decodeCommand, encodeCommand, type KvCommand, type KvOp } from "./command.ts"
export { KvStateMachine } from "./kvStateMachine.ts"
export { defaultKvLimits, type KvLimits, resolveKvLimits, type SessionLimits } from "./limits.ts"
export { type KvError, type KvErrorKind, type KvResult, kvError, okResult, type SessionResult } from "./result.ts"
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
