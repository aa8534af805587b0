/** A key's value and its metadata (see `KvStateMachine` for what the numbers mean). */
export interface KvEntry {
  readonly value: string
  /** Writes since the key was created: 1 after the create, 0 never stored (absent). */
  readonly version: number
  /** The revision of the last write to the key. */
  readonly modRevision: number
  /** The revision of the write that created the key (since it was last absent). */
  readonly createRevision: number
}

/**
 * What a conditional write or a transaction answered. Stored in the client's session, so a retry
 * gets this same answer back, across snapshots and shard moves.
 *
 *   cas  `applied`: the condition held and the write was done; `entry` is the key's entry when
 *        the condition failed (absent when the key is). `revision` is the store's (the shard's)
 *        revision after the command: the write's own revision when applied.
 *   txn  `succeeded`: every compare held, so the success ops ran (else the failure ops);
 *        `entries` has one element per op run, the entry a `get` read (null when absent or for a
 *        write).
 */
export type KvReply =
  | {
      readonly kind: "cas"
      readonly applied: boolean
      readonly revision: number
      readonly entry?: KvEntry
    }
  | {
      readonly kind: "txn"
      readonly succeeded: boolean
      readonly revision: number
      readonly entries: readonly (KvEntry | null)[]
    }
  /** A lease granted or renewed: its id and TTL. */
  | { readonly kind: "lease"; readonly lease: number; readonly ttlMs: number }

/** What applying one KV command produced, as the client sees it. */
export type KvResult = { readonly ok: true; readonly reply?: KvReply } | KvError

/**
 * `SessionExpired`: the write was not applied and never will be (resend it under a new session).
 * `OutcomeUnknown`: the server cannot tell whether the write was applied.
 * `CrossShard`: a transaction named keys of more than one shard; nothing was written.
 * `InvalidRequest`: a request the server cannot apply whatever the state (too many txn ops, ...).
 * `LeaseNotFound`: the lease named was revoked, expired or never granted; nothing was written.
 */
export type KvErrorKind =
  | "ValueTooLarge"
  | "KeyTooLarge"
  | "SessionExpired"
  | "OutcomeUnknown"
  | "TooManyOutstanding"
  | "Stale"
  | "CrossShard"
  | "InvalidRequest"
  | "LeaseNotFound"

export interface KvError {
  readonly ok: false
  readonly error: KvErrorKind
  readonly message: string
}

/** Shared by every successful write, so a session's table of results costs no object per entry. */
export const okResult: KvResult = Object.freeze({ ok: true })

export const kvError = (error: KvErrorKind, message: string): KvError => Object.freeze({ ok: false, error, message })

/**
 * What a session table can store: success (with an answer to give back, for CAS and
 * transactions), or an error named by a string. Other state machines that reuse client sessions
 * (the shard controller) have their own error kinds.
 */
export type SessionResult =
  | { readonly ok: true; readonly reply?: unknown }
  | { readonly ok: false; readonly error: string; readonly message: string }
