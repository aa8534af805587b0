/**
 * Client sessions: exactly-once application of writes when a client has several operations
 * outstanding and retries them through leader changes, restarts and shard migration.
 *
 * Per client the table keeps a `floor` (the highest `ackedBelow` the client has sent: it has
 * received the result of every seq below it) and the result of every applied seq >= floor.
 * A retry of an applied seq gets its stored result back instead of being applied again; a seq
 * below the floor is one whose result the client already holds, so it is answered `Stale`.
 *
 * Memory bound: a result is stored only for floor <= seq < floor + maxOutstandingPerClient
 * (the floor never falls), so the table holds at most
 *   sessions × maxOutstandingPerClient results,
 * where sessions are the clients that sent a command within the last sessionTtlMs of log time.
 * With the defaults (1024 outstanding) and a sequential clerk, a session holds one result.
 *
 * Time is log time: the largest `nowMs` stamped on any command seen, so every replica expires
 * the same sessions at the same log position, and a new leader whose clock is behind cannot make
 * time run backwards.
 *
 * Known limit: a client whose session expired and that never received any result (it still
 * sends ackedBelow = 1) is indistinguishable from a new client, so its retries could apply again;
 * with a TTL of an hour, that client has been retrying for an hour.
 */
import { resolveKvLimits, type SessionLimits } from "./limits.ts"
import { type KvError, type KvErrorKind, type KvResult, kvError, okResult, type SessionResult } from "./result.ts"

export type SessionVerdict<R extends SessionResult = KvResult> =
  | { readonly kind: "apply" }
  | { readonly kind: "duplicate"; readonly result: R }
  | { readonly kind: "reject"; readonly result: KvError }

/** One session as plain data, for migrating sessions between shard owners. */
export interface SessionData<R extends SessionResult = KvResult> {
  readonly clientId: number
  readonly floor: number
  readonly lastSeenMs: number
  /** Results of applied seqs >= floor, in no particular order. */
  readonly results: readonly (readonly [seq: number, result: R])[]
}

export interface SessionsData<R extends SessionResult = KvResult> {
  readonly logTimeMs: number
  readonly sessions: readonly SessionData<R>[]
}

/**
 * The compact snapshot form: `[logTimeMs, sessions]` with each session
 * `[clientId, floor, lastSeenMs, okOffsets, errors]`, where a seq is stored as its offset from
 * the floor (small, so one msgpack byte) and `errors` lists `[offset, errorKind, message]`.
 */
export type SessionsSnapshot = readonly [logTimeMs: number, sessions: readonly SessionTuple[]]
export type SessionTuple = readonly [
  clientId: number,
  floor: number,
  lastSeenMs: number,
  okOffsets: readonly number[],
  errors: readonly (readonly [offset: number, error: string, message: string])[],
]

interface Session<R extends SessionResult> {
  /** Every seq < floor has been received by the client. Never decreases. */
  floor: number
  /** Log time of the last command; sessions are kept in the map in order of this. */
  lastSeenMs: number
  /** seq -> result, for applied seqs with floor <= seq < floor + maxOutstandingPerClient. */
  readonly results: Map<number, R>
}

const applyVerdict = Object.freeze({ kind: "apply" }) as { readonly kind: "apply" }

/**
 * Generic in the result type so other state machines (the shard controller) reuse it; every
 * stored error is `{ ok: false, error, message }` with a string kind.
 */
export class ClientSessions<R extends SessionResult = KvResult> {
  readonly limits: SessionLimits
  /**
   * Insertion order is order of `lastSeenMs` (a touched session is moved to the end), so expiry
   * only looks at the front of the map.
   */
  #sessions = new Map<number, Session<R>>()
  #logTimeMs = 0

  constructor(limits?: Partial<SessionLimits>) {
    const { sessionTtlMs, maxOutstandingPerClient } = resolveKvLimits(limits)
    this.limits = Object.freeze({ sessionTtlMs, maxOutstandingPerClient })
  }

  /** The largest `nowMs` seen so far. */
  get logTimeMs(): number {
    return this.#logTimeMs
  }

  /**
   * Decides what to do with command `seq` of `clientId`. Advances log time, expires idle sessions
   * and records the command in the client's session. On "apply", the caller applies the operation
   * and then calls `record` with its result.
   */
  check(clientId: number, seq: number, ackedBelow: number, nowMs: number): SessionVerdict<R> {
    this.expire(nowMs)
    const max = this.limits.maxOutstandingPerClient
    const session = this.#sessions.get(clientId)
    if (session === undefined) {
      if (ackedBelow > 1) {
        return reject(
          "SessionExpired",
          `client ${clientId} has no session (it expired after ${this.limits.sessionTtlMs} ms idle); start a new client`,
        )
      }
      if (seq >= 1 + max) return tooManyOutstanding(clientId, seq, 1, max)
      this.#sessions.set(clientId, { floor: 1, lastSeenMs: this.#logTimeMs, results: new Map() })
      return applyVerdict
    }
    this.#touch(clientId, session)
    if (ackedBelow > session.floor) raiseFloor(session, ackedBelow)
    if (seq < session.floor) {
      return reject("Stale", `client ${clientId} already received the result of seq ${seq} (floor ${session.floor})`)
    }
    const stored = session.results.get(seq)
    if (stored !== undefined) return { kind: "duplicate", result: stored }
    if (seq >= session.floor + max) return tooManyOutstanding(clientId, seq, session.floor, max)
    return applyVerdict
  }

  /** Stores the result of applying `seq` so that retries get it back. */
  record(clientId: number, seq: number, result: R, nowMs: number): void {
    this.#advance(nowMs)
    let session = this.#sessions.get(clientId)
    if (session === undefined) {
      session = { floor: 1, lastSeenMs: this.#logTimeMs, results: new Map() }
      this.#sessions.set(clientId, session)
    } else {
      this.#touch(clientId, session)
    }
    if (seq >= session.floor) session.results.set(seq, result)
  }

  /** Advances log time to `nowMs` (if later) and drops sessions idle for more than the TTL. */
  expire(nowMs: number): void {
    this.#advance(nowMs)
    const oldest = this.#logTimeMs - this.limits.sessionTtlMs
    for (const [clientId, session] of this.#sessions) {
      if (session.lastSeenMs >= oldest) break
      this.#sessions.delete(clientId)
    }
  }

  count(): number {
    return this.#sessions.size
  }

  /** Results held over all sessions (bounded by count() × maxOutstandingPerClient). */
  storedResultCount(): number {
    let total = 0
    for (const session of this.#sessions.values()) total += session.results.size
    return total
  }

  /** The sessions (of `clientIds` only, if given) as plain data, oldest activity first. */
  export(clientIds?: Iterable<number>): SessionsData<R> {
    const wanted = clientIds === undefined ? undefined : new Set(clientIds)
    const sessions: SessionData<R>[] = []
    for (const [clientId, session] of this.#sessions) {
      if (wanted !== undefined && !wanted.has(clientId)) continue
      sessions.push({
        clientId,
        floor: session.floor,
        lastSeenMs: session.lastSeenMs,
        results: [...session.results],
      })
    }
    return { logTimeMs: this.#logTimeMs, sessions }
  }

  /**
   * Merges another table in (shard migration): per client the higher floor, the later activity
   * and the union of results at or above the floor. A result already held wins over an incoming
   * one for the same seq (both came from applying that one command). Throws on malformed data.
   */
  merge(other: SessionsData<R>): void {
    const incoming = validateSessionsData<R>(other)
    this.#advance(incoming.logTimeMs)
    for (const data of incoming.sessions) {
      const session = this.#sessions.get(data.clientId)
      if (session === undefined) {
        const results = new Map<number, R>()
        for (const [seq, result] of data.results) if (seq >= data.floor) results.set(seq, result)
        this.#sessions.set(data.clientId, { floor: data.floor, lastSeenMs: data.lastSeenMs, results })
        continue
      }
      session.lastSeenMs = Math.max(session.lastSeenMs, data.lastSeenMs)
      if (data.floor > session.floor) raiseFloor(session, data.floor)
      for (const [seq, result] of data.results) {
        if (seq >= session.floor && !session.results.has(seq)) session.results.set(seq, result)
      }
    }
    this.#sortByActivity()
  }

  toSnapshot(): SessionsSnapshot {
    const sessions: SessionTuple[] = []
    for (const [clientId, session] of this.#sessions) {
      const okOffsets: number[] = []
      const errors: [number, string, string][] = []
      for (const [seq, result] of session.results) {
        if (result.ok) okOffsets.push(seq - session.floor)
        else errors.push([seq - session.floor, result.error, result.message])
      }
      sessions.push([clientId, session.floor, session.lastSeenMs, okOffsets, errors])
    }
    return [this.#logTimeMs, sessions]
  }

  /** Rebuilds a table from `toSnapshot()` output. Throws an Error naming the fault if malformed. */
  static fromSnapshot<R extends SessionResult = KvResult>(
    snapshot: unknown,
    limits?: Partial<SessionLimits>,
  ): ClientSessions<R> {
    const table = new ClientSessions<R>(limits)
    if (!Array.isArray(snapshot) || snapshot.length !== 2) throw corrupt("expected [logTimeMs, sessions]")
    const [logTimeMs, tuples] = snapshot as unknown[]
    if (!isTime(logTimeMs)) throw corrupt(`logTimeMs is ${String(logTimeMs)}`)
    if (!Array.isArray(tuples)) throw corrupt("sessions is not a list")
    table.#logTimeMs = logTimeMs
    for (const tuple of tuples as unknown[]) {
      const [clientId, session] = parseSessionTuple<R>(tuple)
      if (table.#sessions.has(clientId)) throw corrupt(`client ${clientId} appears twice`)
      table.#sessions.set(clientId, session)
    }
    table.#sortByActivity()
    return table
  }

  #advance(nowMs: number): void {
    if (nowMs > this.#logTimeMs) this.#logTimeMs = nowMs
  }

  #touch(clientId: number, session: Session<R>): void {
    // Already stamped with the current log time means already at the end of the order.
    if (session.lastSeenMs === this.#logTimeMs) return
    session.lastSeenMs = this.#logTimeMs
    this.#sessions.delete(clientId)
    this.#sessions.set(clientId, session)
  }

  #sortByActivity(): void {
    let previous = Number.NEGATIVE_INFINITY
    let sorted = true
    for (const session of this.#sessions.values()) {
      if (session.lastSeenMs < previous) sorted = false
      previous = session.lastSeenMs
    }
    if (sorted) return
    // A stable sort: equal times keep their order, so a restored table is in the same order as
    // the one that took the snapshot and snapshots of the two stay byte-identical.
    const entries = [...this.#sessions].sort(([, a], [, b]) => a.lastSeenMs - b.lastSeenMs)
    this.#sessions = new Map(entries)
  }
}

const reject = (error: KvErrorKind, message: string): { readonly kind: "reject"; readonly result: KvError } => ({
  kind: "reject",
  result: kvError(error, message),
})

const tooManyOutstanding = (clientId: number, seq: number, floor: number, max: number) =>
  reject(
    "TooManyOutstanding",
    `client ${clientId} sent seq ${seq} but has not acknowledged seq ${floor}; at most ${max} may be outstanding`,
  )

/** Drops results below the new floor, touching as few entries as possible. */
const raiseFloor = <R extends SessionResult>(session: Session<R>, floor: number): void => {
  const { results } = session
  const previous = session.floor
  session.floor = floor
  if (results.size === 0) return
  if (floor - previous <= results.size) {
    for (let seq = previous; seq < floor; seq++) results.delete(seq)
  } else {
    for (const seq of results.keys()) if (seq < floor) results.delete(seq)
  }
}

const corrupt = (what: string): Error => new Error(`ClientSessions: corrupt sessions snapshot: ${what}`)

const isPositiveInteger = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 1

const isOffset = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0

const isTime = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value) && value >= 0

const isErrorKind = (value: unknown): value is string => typeof value === "string" && value.length > 0

const parseSessionTuple = <R extends SessionResult>(tuple: unknown): [number, Session<R>] => {
  if (!Array.isArray(tuple) || tuple.length !== 5) throw corrupt("a session is not [clientId, floor, ...]")
  const [clientId, floor, lastSeenMs, okOffsets, errors] = tuple as unknown[]
  if (!isPositiveInteger(clientId)) throw corrupt(`clientId is ${String(clientId)}`)
  if (!isPositiveInteger(floor)) throw corrupt(`floor of client ${clientId} is ${String(floor)}`)
  if (!isTime(lastSeenMs)) throw corrupt(`lastSeenMs of client ${clientId} is ${String(lastSeenMs)}`)
  if (!Array.isArray(okOffsets) || !Array.isArray(errors)) throw corrupt(`results of client ${clientId}`)
  const results = new Map<number, R>()
  for (const offset of okOffsets as unknown[]) {
    if (!isOffset(offset)) throw corrupt(`result offset ${String(offset)} of client ${clientId}`)
    results.set(floor + offset, okResult as R)
  }
  for (const entry of errors as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 3) throw corrupt(`error result of client ${clientId}`)
    const [offset, kind, message] = entry as unknown[]
    if (!isOffset(offset) || !isErrorKind(kind) || typeof message !== "string") {
      throw corrupt(`error result of client ${clientId}`)
    }
    results.set(floor + offset, sessionError<R>(kind, message))
  }
  return [clientId, { floor, lastSeenMs, results }]
}

const sessionError = <R extends SessionResult>(error: string, message: string): R =>
  Object.freeze({ ok: false, error, message }) as R

const isSessionResult = (value: unknown): value is SessionResult => {
  if (typeof value !== "object" || value === null) return false
  const { ok, error, message } = value as { ok?: unknown; error?: unknown; message?: unknown }
  return ok === true || (ok === false && isErrorKind(error) && typeof message === "string")
}

/** Checks data that may have crossed the network, and shares one object for every `ok`. */
const validateSessionsData = <R extends SessionResult>(data: SessionsData<R>): SessionsData<R> => {
  const bad = (what: string): Error => new Error(`ClientSessions.merge: malformed sessions: ${what}`)
  if (typeof data !== "object" || data === null || !isTime(data.logTimeMs) || !Array.isArray(data.sessions)) {
    throw bad("expected { logTimeMs, sessions }")
  }
  const sessions: SessionData<R>[] = []
  for (const session of data.sessions as readonly unknown[]) {
    const { clientId, floor, lastSeenMs, results } = (session ?? {}) as Partial<Record<keyof SessionData, unknown>>
    if (!isPositiveInteger(clientId) || !isPositiveInteger(floor) || !isTime(lastSeenMs) || !Array.isArray(results)) {
      throw bad(`session ${JSON.stringify(session)}`)
    }
    const checked: [number, R][] = []
    for (const entry of results as unknown[]) {
      const [seq, result] = Array.isArray(entry) ? (entry as unknown[]) : []
      if (!isPositiveInteger(seq) || !isSessionResult(result)) throw bad(`result of client ${clientId}`)
      checked.push([seq, result.ok ? (okResult as R) : sessionError<R>(result.error, result.message)])
    }
    sessions.push({ clientId, floor, lastSeenMs, results: checked })
  }
  return { logTimeMs: data.logTimeMs, sessions }
}
