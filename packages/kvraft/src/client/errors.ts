import { PermissionDenied } from "@kv/rpc"
import { Effect, Schema } from "effect"

export { PermissionDenied }

/** The operation did not complete before its deadline. A write may or may not have taken effect. */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  operation: Schema.String,
  key: Schema.String,
  afterMs: Schema.Number,
}) {
  override get message(): string {
    return `${this.operation} ${JSON.stringify(this.key)} did not complete within ${this.afterMs} ms (outcome unknown)`
  }
}

/** The key is longer than the cluster allows. Nothing was written. */
export class KeyTooLarge extends Schema.TaggedError<KeyTooLarge>()("KeyTooLarge", { message: Schema.String }) {}

/** The value (for append: the value it would produce) is larger than the cluster allows. Nothing was written. */
export class ValueTooLarge extends Schema.TaggedError<ValueTooLarge>()("ValueTooLarge", { message: Schema.String }) {}

/**
 * The client's session had expired (idle past the session lifetime): the write was not applied
 * and never will be. Clients resend such a write under a fresh session by themselves, so this
 * reaches an application only if that keeps failing.
 */
export class SessionExpired extends Schema.TaggedError<SessionExpired>()("SessionExpired", {
  message: Schema.String,
}) {}

/**
 * The server had forgotten this client's session, so it cannot tell whether the write was applied
 * (it may have been, once). Later operations of the same client work (under a fresh session).
 */
export class OutcomeUnknown extends Schema.TaggedError<OutcomeUnknown>()("OutcomeUnknown", {
  message: Schema.String,
}) {}

/** `PermissionDenied`: the client's key does not grant the role the operation needs (see docs/operations.md). */
export type KvClientError = Timeout | KeyTooLarge | ValueTooLarge | SessionExpired | OutcomeUnknown | PermissionDenied

/**
 * A server's refusal of a KV operation as the client's typed error. `Stale` and
 * `TooManyOutstanding` cannot follow from a client's own bookkeeping: they are defects.
 */
export const fromKvErrorReply = (reply: {
  readonly error: string
  readonly message: string
}): Effect.Effect<never, KvClientError> => {
  switch (reply.error) {
    case "ValueTooLarge":
      return Effect.fail(new ValueTooLarge({ message: reply.message }))
    case "KeyTooLarge":
      return Effect.fail(new KeyTooLarge({ message: reply.message }))
    case "SessionExpired":
      return Effect.fail(new SessionExpired({ message: reply.message }))
    case "OutcomeUnknown":
      return Effect.fail(new OutcomeUnknown({ message: reply.message }))
    default:
      return Effect.die(new Error(`unexpected reply ${reply.error}: ${reply.message}`))
  }
}
