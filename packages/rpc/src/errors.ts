import { Schema } from "effect"

/** No reply arrived before the call's deadline; the request may or may not have been acted on. */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  to: Schema.String,
  method: Schema.String,
  afterMs: Schema.Number,
}) {}

/** The request could not be sent at all: a malformed address, a closed transport, or a message too large. */
export class Unreachable extends Schema.TaggedError<Unreachable>()("Unreachable", {
  to: Schema.String,
  reason: Schema.String,
}) {}

/** The server received the request but could not run it (unknown method, bad request, handler defect). */
export class RemoteError extends Schema.TaggedError<RemoteError>()("RemoteError", {
  to: Schema.String,
  method: Schema.String,
  code: Schema.String,
  message: Schema.String,
}) {}

/**
 * The server refused the request because the caller's key does not grant the role the method
 * needs (a read-only client writing, a client key asking for a shard). Nothing was done; retrying
 * with the same key cannot succeed.
 */
export class PermissionDenied extends Schema.TaggedError<PermissionDenied>()("PermissionDenied", {
  to: Schema.String,
  method: Schema.String,
  message: Schema.String,
}) {}

/** The local socket could not be opened (port in use, bad address). */
export class TransportError extends Schema.TaggedError<TransportError>()("TransportError", {
  address: Schema.String,
  message: Schema.String,
}) {}

export type CallError = Timeout | Unreachable | RemoteError | PermissionDenied
