/**
 * Client sessions: exactly-once application of writes when a client has several operations
 * outstanding and retries them through leader changes, restarts and shard migration.
 *
 * Per client the table keeps a `floor` (the highest `ackedBelow` the client has sent: it has
 * received the result of every seq below it) and the result of every applied seq >= floor.
 * A retry of an applied seq gets its stored result back instead of being applied again; a seq
 * below the floor is one whose result the client already holds, so it is answered `Stale`.
 *
 * Log time. Every command carries `nowMs`, a stamp from the proposing leader's monotonic clock.
 * Stamps of different replicas are not comparable (their clocks may be hours apart), so log time
 * is not a stamp: it advances by the difference between consecutive stamps, clamped to
 * [0, maxLogTimeStepMs]. Under one leader time flows at its real rate (commands a step or less
 * apart); a new leader whose clock is hours ahead adds at most one step, one whose clock is
 * behind adds nothing. So expiring an active session takes sessionTtlMs / maxLogTimeStepMs leader
 * changes in a row (120 with the defaults), not one bad clock. Every replica applies the same
 * stamps in the same order, so every replica computes the same log time. Where commands are more
 * than a step apart, log time runs slower than real time and sessions live longer.
 *
 * Expiry. A session idle for more than sessionTtlMs of log time is expired: it moves, with its
 * floor and results, to a first-in first-out list of the last maxExpiredSessions expired
 * sessions, which never applies anything again. While a client is in that list every answer is
 * exact: an applied seq gets its stored result, any other seq at or above the floor is answered
 * `SessionExpired`, which therefore means "not applied, and never will be" (the client starts a
 * fresh session under a new id and resends). A client the table does not know that claims to
 * have received results (ackedBelow > 1) may have had writes applied in a session forgotten
 * since; its unanswered writes get `OutcomeUnknown`, and it is listed as unknown (never applying
 * again) so that no later copy of those writes can apply.
 *
 * Memory bound: a result is stored only for floor <= seq < floor + maxOutstandingPerClient
 * (the floor never falls), so the table holds at most
 *   (sessions + maxExpiredSessions) × maxOutstandingPerClient results,
 * where sessions are the clients that sent a command within the last sessionTtlMs of log time.
 * With the defaults (1024 outstanding) and a sequential clerk, a session holds one result. Most
 * results cost a few bytes; the answer of a CAS that failed holds the key's entry, and that of a
 * transaction the values its gets read (each at most maxValueBytes), so the table's bytes are
 * bounded by that many results × maxValueBytes.
 *
 * Known limit: a client id forgotten altogether (expired, then pushed out of the expired list by
 * maxExpiredSessions later expiries) with ackedBelow = 1 is indistinguishable from a new client,
 * so a copy of its first writes arriving that late could apply again. Clerks never reuse an id
 * after its session expired, so this needs a datagram or log entry older than the session TTL
 * plus that many expiries.
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
  /** Log time of the table it came from; see `SessionsData.logTimeMs`. */
  readonly lastSeenMs: number
  /** Results of applied seqs >= floor, in no particular order. */
  readonly results: readonly (readonly [seq: number, result: R])[]
}

/** An expired session as plain data. */
export interface ExpiredSessionData<R extends SessionResult = KvResult> {
  readonly clientId: number
  readonly floor: number
  /** True when the results are every seq >= floor ever applied for the client; false when unknown. */
  readonly known: boolean
  readonly results: readonly (readonly [seq: number, result: R])[]
}

export interface SessionsData<R extends SessionResult = KvResult> {
  /** The exporting table's log time: `lastSeenMs` values are meaningful only relative to it. */
  readonly logTimeMs: number
  readonly sessions: readonly SessionData<R>[]
  /** Oldest first. */
  readonly expired?: readonly ExpiredSessionData<R>[]
}

/**
 * The compact snapshot form: `[logTimeMs, sessions, lastStampMs, expired]` with each session
 * `[clientId, floor, lastSeenMs, okOffsets, errors, replies?]` and each expired session
 * `[clientId, floor, known, okOffsets, errors, replies?]`, where a seq is stored as its offset from
 * the floor (small, so one msgpack byte), `errors` lists `[offset, errorKind, message]` and
 * `replies` (present only when some result carries one: CAS and transaction answers) lists
 * `[offset, reply]`. A plain success costs one small number; an answer is kept whole, so a retried
 * CAS gets its first answer back after a snapshot or a shard move.
 * `lastStampMs` is null before the first command. The older form `[logTimeMs, sessions]` (log
 * time was the largest stamp, nothing expired was kept) is still read.
 */
export type SessionsSnapshot = readonly [
  logTimeMs: number,
  sessions: readonly SessionTuple[],
  lastStampMs: number | null,
  expired: readonly ExpiredSessionTuple[],
]
export type SessionTuple = readonly [
  clientId: number,
  floor: number,
  lastSeenMs: number,
  okOffsets: readonly number[],
  errors: readonly ErrorTuple[],
  replies?: readonly ReplyTuple[],
]
export type ExpiredSessionTuple = readonly [
  clientId: number,
  floor: number,
  known: boolean,
  okOffsets: readonly number[],
  errors: readonly ErrorTuple[],
  replies?: readonly ReplyTuple[],
]
type ErrorTuple = readonly [offset: number, error: string, message: string]
type ReplyTuple = readonly [offset: number, reply: unknown]

interface Session<R extends SessionResult> {
  /** Every seq < floor has been received by the client. Never decreases. */
  floor: number
  /** Log time of the last command; sessions are kept in the map in order of this. */
  lastSeenMs: number
  /** seq -> result, for applied seqs with floor <= seq < floor + maxOutstandingPerClient. */
  readonly results: Map<number, R>
}

interface ExpiredSession<R extends SessionResult> {
  floor: number
  /** Whether `results` holds every applied seq >= floor (an expired session) or nothing is known. */
  known: boolean
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
  /** Oldest first: the front is forgotten first. Never holds a client that has a session. */
  #expired = new Map<number, ExpiredSession<R>>()
  #logTimeMs = 0
  /** The stamp of the last command, or undefined before the first one. */
  #lastStampMs: number | undefined = undefined

  constructor(limits?: Partial<SessionLimits>) {
    const { sessionTtlMs, maxOutstandingPerClient, maxLogTimeStepMs, maxExpiredSessions } = resolveKvLimits(limits)
    this.limits = Object.freeze({ sessionTtlMs, maxOutstandingPerClient, maxLogTimeStepMs, maxExpiredSessions })
  }

  /** Log time: starts at the first stamp and advances by clamped stamp differences. */
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
      const expired = this.#expired.get(clientId)
      if (expired !== undefined) return this.#answerExpired(clientId, expired, seq, ackedBelow)
      if (ackedBelow > 1) {
        // Writes of this client may have been applied in a session this table has forgotten.
        this.#remember(clientId, { floor: ackedBelow, known: false, results: new Map() })
        return outcomeUnknown(clientId, seq)
      }
      if (seq >= 1 + max) return tooManyOutstanding(clientId, seq, 1, max)
      this.#sessions.set(clientId, { floor: 1, lastSeenMs: this.#logTimeMs, results: new Map() })
      return applyVerdict
    }
    this.#touch(clientId, session)
    if (ackedBelow > session.floor) raiseFloor(session, ackedBelow)
    if (seq < session.floor) return stale(clientId, seq, session.floor)
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
      // `check` said apply, so the client has no expired entry; be safe if called out of turn.
      this.#expired.delete(clientId)
      session = { floor: 1, lastSeenMs: this.#logTimeMs, results: new Map() }
      this.#sessions.set(clientId, session)
    } else {
      this.#touch(clientId, session)
    }
    if (seq >= session.floor) session.results.set(seq, result)
  }

  /** Advances log time by the stamp `nowMs` and expires sessions idle for more than the TTL. */
  expire(nowMs: number): void {
    this.#advance(nowMs)
    const oldest = this.#logTimeMs - this.limits.sessionTtlMs
    for (const [clientId, session] of this.#sessions) {
      if (session.lastSeenMs >= oldest) break
      this.#sessions.delete(clientId)
      this.#remember(clientId, { floor: session.floor, known: true, results: session.results })
    }
  }

  /** Live sessions. */
  count(): number {
    return this.#sessions.size
  }

  /** Expired sessions still remembered (at most maxExpiredSessions). */
  expiredCount(): number {
    return this.#expired.size
  }

  /** Results held over all sessions, live and expired. */
  storedResultCount(): number {
    let total = 0
    for (const session of this.#sessions.values()) total += session.results.size
    for (const session of this.#expired.values()) total += session.results.size
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
    const expired: ExpiredSessionData<R>[] = []
    for (const [clientId, session] of this.#expired) {
      if (wanted !== undefined && !wanted.has(clientId)) continue
      expired.push({ clientId, floor: session.floor, known: session.known, results: [...session.results] })
    }
    return { logTimeMs: this.#logTimeMs, sessions, expired }
  }

  /**
   * Merges another table in (shard migration): per client the higher floor, the later activity
   * and the union of results at or above the floor. A result already held wins over an incoming
   * one for the same seq (both came from applying that one command). The other table's log time
   * is its own: a session keeps its idle time, counted back from this table's log time. A client
   * live on either side is live here; one expired on both sides stays expired. Throws on
   * malformed data.
   */
  merge(other: SessionsData<R>): void {
    const incoming = validateSessionsData<R>(other)
    for (const data of incoming.expired ?? []) {
      const live = this.#sessions.get(data.clientId)
      if (live !== undefined) {
        mergeResults(live, data.floor, data.results)
        continue
      }
      const held = this.#expired.get(data.clientId)
      if (held === undefined) {
        this.#remember(data.clientId, { floor: data.floor, known: data.known, results: resultsFrom(data) })
      } else {
        held.known &&= data.known
        mergeResults(held, data.floor, data.results)
      }
    }
    for (const data of incoming.sessions) {
      const lastSeenMs = Math.max(0, this.#logTimeMs - Math.max(0, incoming.logTimeMs - data.lastSeenMs))
      const session = this.#sessions.get(data.clientId)
      if (session === undefined) {
        const results = resultsFrom(data)
        const held = this.#expired.get(data.clientId)
        const revived = { floor: data.floor, lastSeenMs, results }
        if (held !== undefined) {
          this.#expired.delete(data.clientId)
          mergeResults(revived, held.floor, [...held.results])
        }
        this.#sessions.set(data.clientId, revived)
        continue
      }
      session.lastSeenMs = Math.max(session.lastSeenMs, lastSeenMs)
      mergeResults(session, data.floor, data.results)
    }
    this.#sortByActivity()
  }

  toSnapshot(): SessionsSnapshot {
    const sessions: SessionTuple[] = []
    for (const [clientId, session] of this.#sessions) {
      const [okOffsets, errors, replies] = resultTuples(session)
      sessions.push(
        replies.length === 0
          ? [clientId, session.floor, session.lastSeenMs, okOffsets, errors]
          : [clientId, session.floor, session.lastSeenMs, okOffsets, errors, replies],
      )
    }
    const expired: ExpiredSessionTuple[] = []
    for (const [clientId, session] of this.#expired) {
      const [okOffsets, errors, replies] = resultTuples(session)
      expired.push(
        replies.length === 0
          ? [clientId, session.floor, session.known, okOffsets, errors]
          : [clientId, session.floor, session.known, okOffsets, errors, replies],
      )
    }
    return [this.#logTimeMs, sessions, this.#lastStampMs ?? null, expired]
  }

  /** Rebuilds a table from `toSnapshot()` output. Throws an Error naming the fault if malformed. */
  static fromSnapshot<R extends SessionResult = KvResult>(
    snapshot: unknown,
    limits?: Partial<SessionLimits>,
  ): ClientSessions<R> {
    const table = new ClientSessions<R>(limits)
    if (!Array.isArray(snapshot) || (snapshot.length !== 2 && snapshot.length !== 4)) {
      throw corrupt("expected [logTimeMs, sessions, lastStampMs, expired]")
    }
    const [logTimeMs, tuples, lastStampMs, expiredTuples] = snapshot as unknown[]
    if (!isTime(logTimeMs)) throw corrupt(`logTimeMs is ${String(logTimeMs)}`)
    if (!Array.isArray(tuples)) throw corrupt("sessions is not a list")
    table.#logTimeMs = logTimeMs
    if (snapshot.length === 2) {
      // The older form: log time was the largest stamp seen.
      table.#lastStampMs = logTimeMs
    } else {
      if (lastStampMs !== null && !isTime(lastStampMs)) throw corrupt(`lastStampMs is ${String(lastStampMs)}`)
      table.#lastStampMs = lastStampMs ?? undefined
      if (!Array.isArray(expiredTuples)) throw corrupt("expired sessions is not a list")
    }
    for (const tuple of tuples as unknown[]) {
      const [clientId, session] = parseSessionTuple<R>(tuple)
      if (table.#sessions.has(clientId)) throw corrupt(`client ${clientId} appears twice`)
      table.#sessions.set(clientId, session)
    }
    for (const tuple of (expiredTuples ?? []) as unknown[]) {
      const [clientId, session] = parseExpiredTuple<R>(tuple)
      if (table.#sessions.has(clientId) || table.#expired.has(clientId)) {
        throw corrupt(`client ${clientId} appears twice`)
      }
      table.#expired.set(clientId, session)
    }
    table.#sortByActivity()
    return table
  }

  #answerExpired(clientId: number, expired: ExpiredSession<R>, seq: number, ackedBelow: number): SessionVerdict<R> {
    // Still asked about: forget it last.
    this.#expired.delete(clientId)
    this.#expired.set(clientId, expired)
    if (ackedBelow > expired.floor) raiseFloor(expired, ackedBelow)
    if (seq < expired.floor) return stale(clientId, seq, expired.floor)
    const stored = expired.results.get(seq)
    if (stored !== undefined) return { kind: "duplicate", result: stored }
    if (!expired.known) return outcomeUnknown(clientId, seq)
    return reject(
      "SessionExpired",
      `the session of client ${clientId} expired (idle over ${this.limits.sessionTtlMs} ms of log time); ` +
        `seq ${seq} was not applied and never will be: resend it under a new session`,
    )
  }

  /** Appends to the expired list, forgetting the oldest beyond the bound. */
  #remember(clientId: number, session: ExpiredSession<R>): void {
    this.#expired.delete(clientId)
    this.#expired.set(clientId, session)
    if (this.#expired.size <= this.limits.maxExpiredSessions) return
    for (const oldest of this.#expired.keys()) {
      this.#expired.delete(oldest)
      if (this.#expired.size <= this.limits.maxExpiredSessions) break
    }
  }

  #advance(stampMs: number): void {
    const last = this.#lastStampMs
    this.#lastStampMs = stampMs
    if (last === undefined) {
      // The first command: log time starts at its stamp (unless restored or merged past it).
      if (this.#logTimeMs === 0 && this.#sessions.size === 0) this.#logTimeMs = stampMs
      return
    }
    const step = stampMs - last
    if (step > 0) this.#logTimeMs += Math.min(step, this.limits.maxLogTimeStepMs)
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

const stale = (clientId: number, seq: number, floor: number) =>
  reject("Stale", `client ${clientId} already received the result of seq ${seq} (floor ${floor})`)

const outcomeUnknown = (clientId: number, seq: number) =>
  reject(
    "OutcomeUnknown",
    `client ${clientId} has no session here, and one forgotten may have applied seq ${seq}: its outcome is unknown`,
  )

const tooManyOutstanding = (clientId: number, seq: number, floor: number, max: number) =>
  reject(
    "TooManyOutstanding",
    `client ${clientId} sent seq ${seq} but has not acknowledged seq ${floor}; at most ${max} may be outstanding`,
  )

/** Drops results below the new floor, touching as few entries as possible. */
const raiseFloor = <R extends SessionResult>(session: { floor: number; results: Map<number, R> }, floor: number) => {
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

/** The higher floor and the union of results at or above it; results already held win. */
const mergeResults = <R extends SessionResult>(
  session: { floor: number; results: Map<number, R> },
  floor: number,
  results: readonly (readonly [number, R])[],
): void => {
  if (floor > session.floor) raiseFloor(session, floor)
  for (const [seq, result] of results) {
    if (seq >= session.floor && !session.results.has(seq)) session.results.set(seq, result)
  }
}

const resultsFrom = <R extends SessionResult>(data: {
  readonly floor: number
  readonly results: readonly (readonly [number, R])[]
}): Map<number, R> => {
  const results = new Map<number, R>()
  for (const [seq, result] of data.results) if (seq >= data.floor) results.set(seq, result)
  return results
}

const resultTuples = <R extends SessionResult>(session: {
  readonly floor: number
  readonly results: Map<number, R>
}): [number[], [number, string, string][], [number, unknown][]] => {
  const okOffsets: number[] = []
  const errors: [number, string, string][] = []
  const replies: [number, unknown][] = []
  for (const [seq, result] of session.results) {
    if (!result.ok) errors.push([seq - session.floor, result.error, result.message])
    else if (result.reply === undefined) okOffsets.push(seq - session.floor)
    else replies.push([seq - session.floor, result.reply])
  }
  return [okOffsets, errors, replies]
}

const corrupt = (what: string): Error => new Error(`ClientSessions: corrupt sessions snapshot: ${what}`)

const isPositiveInteger = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 1

const isOffset = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0

const isTime = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value) && value >= 0

const isErrorKind = (value: unknown): value is string => typeof value === "string" && value.length > 0

const parseResults = <R extends SessionResult>(
  clientId: number,
  floor: number,
  okOffsets: unknown,
  errors: unknown,
  replies: unknown,
): Map<number, R> => {
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
  if (replies === undefined) return results
  if (!Array.isArray(replies)) throw corrupt(`replies of client ${clientId}`)
  for (const entry of replies as unknown[]) {
    const [offset, reply] = Array.isArray(entry) && entry.length === 2 ? (entry as unknown[]) : []
    if (!isOffset(offset) || !isReply(reply)) throw corrupt(`reply of client ${clientId}`)
    results.set(floor + offset, sessionReply<R>(reply))
  }
  return results
}

const parseSessionTuple = <R extends SessionResult>(tuple: unknown): [number, Session<R>] => {
  if (!Array.isArray(tuple) || (tuple.length !== 5 && tuple.length !== 6)) {
    throw corrupt("a session is not [clientId, floor, ...]")
  }
  const [clientId, floor, lastSeenMs, okOffsets, errors, replies] = tuple as unknown[]
  if (!isPositiveInteger(clientId)) throw corrupt(`clientId is ${String(clientId)}`)
  if (!isPositiveInteger(floor)) throw corrupt(`floor of client ${clientId} is ${String(floor)}`)
  if (!isTime(lastSeenMs)) throw corrupt(`lastSeenMs of client ${clientId} is ${String(lastSeenMs)}`)
  return [clientId, { floor, lastSeenMs, results: parseResults<R>(clientId, floor, okOffsets, errors, replies) }]
}

const parseExpiredTuple = <R extends SessionResult>(tuple: unknown): [number, ExpiredSession<R>] => {
  if (!Array.isArray(tuple) || (tuple.length !== 5 && tuple.length !== 6)) {
    throw corrupt("an expired session is not [clientId, floor, ...]")
  }
  const [clientId, floor, known, okOffsets, errors, replies] = tuple as unknown[]
  if (!isPositiveInteger(clientId)) throw corrupt(`clientId is ${String(clientId)}`)
  if (!isPositiveInteger(floor)) throw corrupt(`floor of client ${clientId} is ${String(floor)}`)
  if (typeof known !== "boolean") throw corrupt(`known of client ${clientId} is ${String(known)}`)
  return [clientId, { floor, known, results: parseResults<R>(clientId, floor, okOffsets, errors, replies) }]
}

const sessionError = <R extends SessionResult>(error: string, message: string): R =>
  Object.freeze({ ok: false, error, message }) as R

/** An answer kept for retries: plain data (the state machine that stored it knows its shape). */
const isReply = (value: unknown): value is object =>
  typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)

const sessionReply = <R extends SessionResult>(reply: object): R => Object.freeze({ ok: true, reply }) as R

const isSessionResult = (value: unknown): value is SessionResult => {
  if (typeof value !== "object" || value === null) return false
  const { ok, error, message, reply } = value as { ok?: unknown; error?: unknown; message?: unknown; reply?: unknown }
  if (ok === true) return reply === undefined || isReply(reply)
  return ok === false && isErrorKind(error) && typeof message === "string"
}

/** Checks data that may have crossed the network, and shares one object for every `ok`. */
const validateSessionsData = <R extends SessionResult>(data: SessionsData<R>): SessionsData<R> => {
  const bad = (what: string): Error => new Error(`ClientSessions.merge: malformed sessions: ${what}`)
  if (typeof data !== "object" || data === null || !isTime(data.logTimeMs) || !Array.isArray(data.sessions)) {
    throw bad("expected { logTimeMs, sessions }")
  }
  if (data.expired !== undefined && !Array.isArray(data.expired)) throw bad("expired is not a list")
  const checkResults = (clientId: number, results: unknown): [number, R][] => {
    if (!Array.isArray(results)) throw bad(`results of client ${clientId}`)
    const checked: [number, R][] = []
    for (const entry of results as unknown[]) {
      const [seq, result] = Array.isArray(entry) ? (entry as unknown[]) : []
      if (!isPositiveInteger(seq) || !isSessionResult(result)) throw bad(`result of client ${clientId}`)
      const kept = !result.ok
        ? sessionError<R>(result.error, result.message)
        : result.reply === undefined
          ? (okResult as R)
          : sessionReply<R>(result.reply as object)
      checked.push([seq, kept])
    }
    return checked
  }
  const sessions: SessionData<R>[] = []
  for (const session of data.sessions as readonly unknown[]) {
    const { clientId, floor, lastSeenMs, results } = (session ?? {}) as Partial<Record<keyof SessionData, unknown>>
    if (!isPositiveInteger(clientId) || !isPositiveInteger(floor) || !isTime(lastSeenMs)) {
      throw bad(`session ${JSON.stringify(session)}`)
    }
    sessions.push({ clientId, floor, lastSeenMs, results: checkResults(clientId, results) })
  }
  const expired: ExpiredSessionData<R>[] = []
  for (const session of (data.expired ?? []) as readonly unknown[]) {
    const { clientId, floor, known, results } = (session ?? {}) as Partial<Record<keyof ExpiredSessionData, unknown>>
    if (!isPositiveInteger(clientId) || !isPositiveInteger(floor) || typeof known !== "boolean") {
      throw bad(`expired session ${JSON.stringify(session)}`)
    }
    expired.push({ clientId, floor, known, results: checkResults(clientId, results) })
  }
  return { logTimeMs: data.logTimeMs, sessions, expired }
}
