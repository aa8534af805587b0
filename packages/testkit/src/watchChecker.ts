/**
 * The watch checker: what every watcher delivered must be exactly the committed changes of its
 * range, in revision order, with no gap, no repeat and no going back, across all its resumes.
 *
 * The reference is the store's own record of what it applied (the full history of one store: the
 * kvraft group, or one shard), which is itself checked before use: revisions run 1, 2, 3, ... with
 * no gap, replaying it gives exactly the final store (values and metadata), and its values are the
 * writers' (every acknowledged put is in it, nothing in it that no writer attempted, no write twice).
 * Plain data in, a description of the first problem out: the checker knows no service.
 */

export interface CheckedEvent {
  readonly type: "put" | "delete"
  readonly key: string
  readonly value?: string | undefined
  readonly modRevision: number
  readonly createRevision: number
  readonly version: number
}

export interface CheckedEntry {
  readonly value: string
  readonly version: number
  readonly modRevision: number
  readonly createRevision: number
}

/** What one watcher saw, in the order it saw it. */
export type WatchObservation =
  | { readonly kind: "event"; readonly event: CheckedEvent }
  /** The watcher was told it has every event of its range up to `revision`. */
  | { readonly kind: "progress"; readonly revision: number }

export interface WatcherRecord {
  readonly name: string
  /** The key, or the prefix when `prefix`. */
  readonly key: string
  readonly prefix: boolean
  /** The watcher asked for events above this revision. */
  readonly after: number
  readonly observations: readonly WatchObservation[]
}

const inRange = (w: WatcherRecord, key: string) => (w.prefix ? key.startsWith(w.key) : key === w.key)

const show = (e: CheckedEvent) => `${e.type} ${JSON.stringify(e.key)}@${e.modRevision}`

const sameEvent = (a: CheckedEvent, b: CheckedEvent) =>
  a.type === b.type &&
  a.key === b.key &&
  (a.value ?? undefined) === (b.value ?? undefined) &&
  a.modRevision === b.modRevision &&
  a.createRevision === b.createRevision &&
  a.version === b.version

/**
 * Checks a store's full history (from revision 1) against its final state and the writers' values.
 * `attempted` holds every value any writer tried to put, `acknowledged` the ones whose put was
 * answered ok (values are unique per write).
 */
export const checkStoreHistory = (
  history: readonly CheckedEvent[],
  final: ReadonlyMap<string, CheckedEntry>,
  finalRevision: number,
  attempted: ReadonlySet<string>,
  acknowledged: ReadonlySet<string>,
): string | undefined => {
  const store = new Map<string, CheckedEntry>()
  const seenValues = new Set<string>()
  let revision = 0
  for (const event of history) {
    if (event.modRevision !== revision && event.modRevision !== revision + 1) {
      return `history jumps from revision ${revision} to ${show(event)}`
    }
    revision = event.modRevision
    const before = store.get(event.key)
    if (event.type === "delete") {
      if (before === undefined) return `history deletes an absent key: ${show(event)}`
      if (event.version !== 0 || event.createRevision !== 0) return `a delete carries metadata: ${show(event)}`
      store.delete(event.key)
      continue
    }
    const value = event.value
    if (value === undefined) return `a put without a value: ${show(event)}`
    const expected = {
      value,
      version: (before?.version ?? 0) + 1,
      modRevision: event.modRevision,
      createRevision: before?.createRevision ?? event.modRevision,
    }
    if (event.version !== expected.version || event.createRevision !== expected.createRevision) {
      return `${show(event)} has version ${event.version} and createRevision ${event.createRevision}, expected ${expected.version} and ${expected.createRevision}`
    }
    if (!attempted.has(value)) return `${show(event)} puts ${JSON.stringify(value)}, which no writer wrote`
    if (seenValues.has(value)) return `${show(event)} puts ${JSON.stringify(value)} a second time`
    seenValues.add(value)
    store.set(event.key, expected)
  }
  if (revision !== finalRevision) return `history ends at revision ${revision}, the store is at ${finalRevision}`
  for (const value of acknowledged) {
    if (!seenValues.has(value)) return `the acknowledged put of ${JSON.stringify(value)} is not in the history`
  }
  if (store.size !== final.size) return `replaying the history gives ${store.size} keys, the store holds ${final.size}`
  for (const [key, entry] of final) {
    const replayed = store.get(key)
    if (
      replayed === undefined ||
      replayed.value !== entry.value ||
      replayed.version !== entry.version ||
      replayed.modRevision !== entry.modRevision ||
      replayed.createRevision !== entry.createRevision
    ) {
      return `replaying the history gives ${JSON.stringify(replayed)} for ${JSON.stringify(key)}, the store holds ${JSON.stringify(entry)}`
    }
  }
  return undefined
}

/**
 * Checks one watcher against the store's history: its events are the history's events of its
 * range above `after`, in order, each once; a progress mark at R comes only after every such event
 * up to R; marks never go back. `reachedAtLeast`, when given, is a revision the watcher must have
 * reached by the end (liveness: it caught up).
 */
export const checkWatcher = (
  history: readonly CheckedEvent[],
  watcher: WatcherRecord,
  reachedAtLeast?: number,
): string | undefined => {
  const expected = history.filter((e) => e.modRevision > watcher.after && inRange(watcher, e.key))
  let next = 0
  let position = watcher.after
  const where = `watcher ${watcher.name} (${watcher.prefix ? "prefix " : ""}${JSON.stringify(watcher.key)} after ${watcher.after})`
  for (const observation of watcher.observations) {
    if (observation.kind === "progress") {
      if (observation.revision < position) {
        return `${where} went back from revision ${position} to ${observation.revision}`
      }
      const missed = expected[next]
      if (missed !== undefined && missed.modRevision <= observation.revision) {
        return `${where} was told it had everything up to ${observation.revision} but never got ${show(missed)}`
      }
      position = observation.revision
      continue
    }
    const got = observation.event
    if (got.modRevision < position) {
      return `${where} went back: ${show(got)} after revision ${position}`
    }
    const want = expected[next]
    if (want === undefined) return `${where} got ${show(got)}, which is not in the history of its range`
    if (!sameEvent(got, want)) {
      const duplicate = expected.slice(0, next).some((e) => sameEvent(e, got))
      return duplicate
        ? `${where} got ${show(got)} twice`
        : `${where} got ${show(got)} where the history has ${show(want)} (a gap or a wrong event)`
    }
    next++
    position = got.modRevision
  }
  if (reachedAtLeast !== undefined) {
    const missing = expected.find((e, i) => i >= next && e.modRevision <= reachedAtLeast)
    if (missing !== undefined) return `${where} never got ${show(missing)}`
  }
  return undefined
}

/** Runs `checkWatcher` for each watcher; the first problem, if any. */
export const checkWatchers = (
  history: readonly CheckedEvent[],
  watchers: readonly WatcherRecord[],
  reachedAtLeast?: number,
): string | undefined => {
  for (const watcher of watchers) {
    const problem = checkWatcher(history, watcher, reachedAtLeast)
    if (problem !== undefined) return problem
  }
  return undefined
}
