/** What applying one KV command produced, as the client sees it. */
export type KvResult = { readonly ok: true } | KvError

/**
 * `SessionExpired`: the write was not applied and never will be (resend it under a new session).
 * `OutcomeUnknown`: the server cannot tell whether the write was applied.
 */
export type KvErrorKind =
  | "ValueTooLarge"
  | "KeyTooLarge"
  | "SessionExpired"
  | "OutcomeUnknown"
  | "TooManyOutstanding"
  | "Stale"

export interface KvError {
  readonly ok: false
  readonly error: KvErrorKind
  readonly message: string
}

/** Shared by every successful write, so a session's table of results costs no object per entry. */
export const okResult: KvResult = Object.freeze({ ok: true })

export const kvError = (error: KvErrorKind, message: string): KvError => Object.freeze({ ok: false, error, message })

/**
 * What a session table can store: success, or an error named by a string. Other state machines
 * that reuse client sessions (the shard controller) have their own error kinds.
 */
export type SessionResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: string; readonly message: string }
