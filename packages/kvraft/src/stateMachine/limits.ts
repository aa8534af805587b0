/**
 * Limits of the KV state machine. Every replica must run with the same values: the session
 * limits decide which commands are applied, so replicas that disagree would diverge.
 */
export interface KvLimits {
  /** Largest key, in UTF-8 bytes. */
  readonly maxKeyBytes: number
  /** Largest value, in UTF-8 bytes; for an append, of the value it would produce. */
  readonly maxValueBytes: number
  /** A client session idle (no command) for longer than this much log time is dropped. */
  readonly sessionTtlMs: number
  /** How far past its acknowledged floor a client may run: seq must be < floor + this. */
  readonly maxOutstandingPerClient: number
  /**
   * The most one log entry can move log time forward (see sessions.ts): what a new leader whose
   * clock is ahead can add at once. Keep it well below sessionTtlMs.
   */
  readonly maxLogTimeStepMs: number
  /**
   * Expired sessions remembered (what each had applied) so that late retries of their clients
   * are still answered exactly; the oldest is forgotten beyond this many.
   */
  readonly maxExpiredSessions: number
  /** Events of recent changes kept for watchers, per store (the group, or each shard); see watch/history.ts. */
  readonly watchHistoryEvents: number
  /** Bytes of recent changes kept for watchers, per store, counted as watch/history.ts says. */
  readonly watchHistoryBytes: number
}

/** The part of `KvLimits` that client sessions use; shard servers reuse sessions alone. */
export type SessionLimits = Pick<
  KvLimits,
  "sessionTtlMs" | "maxOutstandingPerClient" | "maxLogTimeStepMs" | "maxExpiredSessions"
>

export const defaultKvLimits: KvLimits = Object.freeze({
  maxKeyBytes: 1024,
  maxValueBytes: 1024 * 1024,
  sessionTtlMs: 60 * 60 * 1000,
  maxOutstandingPerClient: 1024,
  maxLogTimeStepMs: 30_000,
  maxExpiredSessions: 10_000,
  watchHistoryEvents: 10_000,
  watchHistoryBytes: 8 * 1024 * 1024,
})

const checkPositiveInteger = (name: string, value: number): void => {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`KvLimits.${name} must be a positive integer, got ${String(value)}`)
  }
}

/** Fills in defaults and rejects nonsense (a misconfigured replica should not start). */
export const resolveKvLimits = (limits?: Partial<KvLimits>): KvLimits => {
  const resolved: KvLimits = { ...defaultKvLimits, ...dropUndefined(limits) }
  checkPositiveInteger("maxKeyBytes", resolved.maxKeyBytes)
  checkPositiveInteger("maxValueBytes", resolved.maxValueBytes)
  checkPositiveInteger("sessionTtlMs", resolved.sessionTtlMs)
  checkPositiveInteger("maxOutstandingPerClient", resolved.maxOutstandingPerClient)
  checkPositiveInteger("maxLogTimeStepMs", resolved.maxLogTimeStepMs)
  checkPositiveInteger("maxExpiredSessions", resolved.maxExpiredSessions)
  checkPositiveInteger("watchHistoryEvents", resolved.watchHistoryEvents)
  checkPositiveInteger("watchHistoryBytes", resolved.watchHistoryBytes)
  return Object.freeze(resolved)
}

// `{ ...defaults, ...{ maxKeyBytes: undefined } }` would erase the default.
const dropUndefined = <T extends object>(partial: Partial<T> | undefined): Partial<T> => {
  if (partial === undefined) return {}
  const out: Partial<T> = {}
  for (const [key, value] of Object.entries(partial)) {
    if (value !== undefined) (out as Record<string, unknown>)[key] = value
  }
  return out
}
