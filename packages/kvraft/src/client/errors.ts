import { Schema } from "effect"

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
 * The server no longer knows this client (idle past the session lifetime), so it cannot guarantee
 * exactly-once for it; the write was not applied. A new client must be created.
 */
export class SessionExpired extends Schema.TaggedError<SessionExpired>()("SessionExpired", {
  message: Schema.String,
}) {}

export type KvClientError = Timeout | KeyTooLarge | ValueTooLarge | SessionExpired
