/**
 * The recent history a store keeps for watchers: every change of the last few revisions, as
 * events in revision order. Part of the replicated state, so every replica that applies the same
 * log holds the same history: it is trimmed by count and size only (never by time), saved in the
 * store's snapshot and, in the sharded service, it moves with the shard inside the shard's bytes.
 *
 * Invariants:
 *   - events are in revision order; a revision's events (a transaction's writes) are contiguous,
 *     and every revision above `compactRevision` up to the store's revision has at least one
 *     event (a revision is only added by a change);
 *   - the history holds every event with a revision above `compactRevision`: a watcher positioned
 *     at or above it can be served with no gap, one below it gets `Compacted`;
 *   - trimming drops whole revisions, oldest first, while the history holds more than
 *     `maxEvents` events or `maxBytes` bytes, but never the newest revision: the bound may be
 *     passed by one revision (at most one Raft entry's worth, or one value for an append).
 *
 * Memory: a put's event shares the key's value string with the store, so the history costs about
 * an object per event in memory; `maxBytes` counts each event as if it were a copy
 * (`2 × (key + value length) + 48`: UTF-16 strings plus the object), which is also about what it
 * adds to a snapshot.
 */
import type { KvEntry } from "../stateMachine/result.ts"

export interface WatchEvent {
  readonly type: "put" | "delete"
  readonly key: string
  /** The value written (puts only). */
  readonly value?: string
  /** The revision of the change. */
  readonly modRevision: number
  /** For a put, the key's entry after it; for a delete, 0. */
  readonly createRevision: number
  readonly version: number
  /** The sharded service: the shard the key lives in (revisions count per shard). */
  readonly shard?: number
}

/** One key, or every key starting with a prefix. */
export interface WatchRange {
  readonly key: string
  readonly prefix: boolean
}

export const inRange = (range: WatchRange, key: string): boolean =>
  range.prefix ? key.startsWith(range.key) : key === range.key

export interface WatchHistoryLimits {
  /** Most events kept (the newest revision is kept whatever its size). */
  readonly maxEvents: number
  /** Most bytes kept, as counted by `eventBytes`. */
  readonly maxBytes: number
}

/** What a read of the history answered. */
export type WatchAnswer =
  /**
   * Every event of the range with a revision in (after, `revision`], in revision order. Empty
   * events with `revision` above `after` is a progress notification: nothing in the range up to
   * `revision`. `revision` may be below `after` when this store lags behind the asker.
   */
  | { readonly kind: "events"; readonly events: readonly WatchEvent[]; readonly revision: number }
  /** Events after `after` are no longer all held: the history starts above `compactRevision`. */
  | { readonly kind: "compacted"; readonly compactRevision: number; readonly revision: number }

export interface WatchReadLimits {
  readonly maxEvents: number
  readonly maxBytes: number
}

export const eventBytes = (event: WatchEvent): number => 2 * (event.key.length + (event.value?.length ?? 0)) + 48

const typeCode = (type: WatchEvent["type"]): number => (type === "put" ? 0 : 1)

export class WatchHistory {
  #events: WatchEvent[] = []
  /** Index of the oldest event kept in `#events` (dropped ones are spliced out in batches). */
  #head = 0
  #bytes = 0
  #compactRevision: number

  constructor(
    readonly limits: WatchHistoryLimits,
    compactRevision = 0,
  ) {
    this.#compactRevision = compactRevision
  }

  /** Every revision above this one is held (up to the store's). */
  get compactRevision(): number {
    return this.#compactRevision
  }

  get size(): number {
    return this.#events.length - this.#head
  }

  get bytes(): number {
    return this.#bytes
  }

  recordPut(key: string, entry: KvEntry): void {
    this.#push({
      type: "put",
      key,
      value: entry.value,
      modRevision: entry.modRevision,
      createRevision: entry.createRevision,
      version: entry.version,
    })
  }

  recordDelete(key: string, revision: number): void {
    this.#push({ type: "delete", key, modRevision: revision, createRevision: 0, version: 0 })
  }

  /** Drops the oldest revisions past the limits; called once per applied command. */
  trim(): void {
    const { maxEvents, maxBytes } = this.limits
    if (this.size <= maxEvents && this.#bytes <= maxBytes) return
    const newest = this.#events[this.#events.length - 1]!.modRevision
    while (this.size > 0 && (this.size > maxEvents || this.#bytes > maxBytes)) {
      const revision = this.#events[this.#head]!.modRevision
      if (revision === newest) break
      while (this.#head < this.#events.length && this.#events[this.#head]!.modRevision === revision) {
        this.#bytes -= eventBytes(this.#events[this.#head]!)
        this.#head++
      }
      this.#compactRevision = revision
    }
    // Splice dropped events out once they are a good part of the array: amortized O(1) per event.
    if (this.#head > 1024 && this.#head * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#head)
      this.#head = 0
    }
  }

  /** Every event held, oldest first. */
  all(): readonly WatchEvent[] {
    return this.#events.slice(this.#head)
  }

  /**
   * Events of `range` after revision `after`, for a store at `storeRevision`: whole revisions
   * only, stopping at a revision boundary once `limits` are reached (a reply always holds at least
   * one revision's events when there are any).
   */
  read(range: WatchRange, after: number, storeRevision: number, limits: WatchReadLimits): WatchAnswer {
    if (after < this.#compactRevision) {
      return { kind: "compacted", compactRevision: this.#compactRevision, revision: storeRevision }
    }
    const events: WatchEvent[] = []
    let bytes = 0
    let previous = after
    for (let i = this.#firstAfter(after); i < this.#events.length; i++) {
      const event = this.#events[i]!
      if (event.modRevision !== previous && (events.length >= limits.maxEvents || bytes >= limits.maxBytes)) {
        return { kind: "events", events, revision: previous }
      }
      previous = event.modRevision
      if (!inRange(range, event.key)) continue
      events.push(event)
      bytes += eventBytes(event)
    }
    return { kind: "events", events, revision: storeRevision }
  }

  /** Events with a revision above `after` (all in range), oldest first: what one command added. */
  since(after: number): readonly WatchEvent[] {
    return this.#events.slice(this.#firstAfter(after))
  }

  /**
   * `[compactRevision, [revision, type, key, value, createRevision, version, ...]]`, where `value`
   * is null for a delete; `true` for a put whose value is still the key's current one
   * (`currentRevision(key)` is the revision of the key's last write), which the store's part of
   * the snapshot holds already; `[n, suffix]` for a put whose value is the first n characters of the
   * key's previous put in the history followed by `suffix` (an append); else the value. So a
   * snapshot (and a shard on the move) carries each current value once, and a run of appends
   * costs what was appended, not every intermediate value.
   */
  toSnapshot(currentRevision: (key: string) => number | undefined): [number, SnapshotField[]] {
    return WatchHistory.snapshotOf(this.all(), this.#compactRevision, currentRevision)
  }

  /**
   * `toSnapshot` of a history that held `events` above `compactRevision` (`all()` and
   * `compactRevision` of a moment), with the current revisions of that moment: a snapshot taken
   * while the store goes on changing.
   */
  static snapshotOf(
    events: readonly WatchEvent[],
    compactRevision: number,
    currentRevision: (key: string) => number | undefined,
  ): [number, SnapshotField[]] {
    const slices = WatchHistory.snapshotSlices(events, compactRevision, currentRevision, events.length + 1)
    for (;;) {
      const next = slices.next()
      if (next.done === true) return next.value
    }
  }

  /** `snapshotOf`, yielding after every `eventsPerSlice` events (a large history takes ≈17 ms). */
  static *snapshotSlices(
    events: readonly WatchEvent[],
    compactRevision: number,
    currentRevision: (key: string) => number | undefined,
    eventsPerSlice: number,
  ): Generator<void, [number, SnapshotField[]]> {
    const flat: SnapshotField[] = new Array(events.length * 6)
    const previousValue = new Map<string, string>()
    let at = 0
    for (let i = 0; i < events.length; i++) {
      if (i > 0 && i % eventsPerSlice === 0) yield
      const e = events[i]!
      flat[at++] = e.modRevision
      flat[at++] = typeCode(e.type)
      flat[at++] = e.key
      flat[at++] = snapshotValue(e, currentRevision(e.key) === e.modRevision, previousValue.get(e.key))
      flat[at++] = e.createRevision
      flat[at++] = e.version
      if (e.value === undefined) previousValue.delete(e.key)
      else previousValue.set(e.key, e.value)
    }
    return [compactRevision, flat]
  }

  /**
   * Rebuilds a history from `toSnapshot()`, taking shared values from `current` (the restored
   * store's entry of a key); throws an Error naming what is wrong.
   */
  static fromSnapshot(
    raw: unknown,
    limits: WatchHistoryLimits,
    storeRevision: number,
    current: (key: string) => KvEntry | undefined,
  ): WatchHistory {
    const [compactRevision, flat] = Array.isArray(raw) && raw.length === 2 ? (raw as unknown[]) : []
    if (!isCount(compactRevision) || !Array.isArray(flat) || flat.length % 6 !== 0) {
      throw new Error("watch history is not [compactRevision, events]")
    }
    if (compactRevision > storeRevision) throw new Error("watch history starts above the store's revision")
    const history = new WatchHistory(limits, compactRevision)
    const previousValue = new Map<string, string>()
    let previous = compactRevision
    for (let i = 0; i < flat.length; i += 6) {
      const [revision, code, key, stored, createRevision, version] = flat.slice(i, i + 6) as unknown[]
      const value =
        typeof key === "string" ? storedValue(stored, revision, current(key), previousValue.get(key)) : stored
      const valid =
        isCount(revision) &&
        revision >= previous &&
        revision > compactRevision &&
        revision <= storeRevision &&
        typeof key === "string" &&
        isCount(createRevision) &&
        isCount(version) &&
        ((code === 0 && typeof value === "string" && version >= 1 && createRevision >= 1) ||
          (code === 1 && value === null && version === 0 && createRevision === 0))
      if (!valid) throw new Error(`watch history event ${i / 6} is malformed`)
      previous = revision
      if (value === null) previousValue.delete(key)
      else previousValue.set(key, value as string)
      history.#push(
        code === 0
          ? { type: "put", key, value: value as string, modRevision: revision, createRevision, version }
          : { type: "delete", key, modRevision: revision, createRevision: 0, version: 0 },
      )
    }
    return history
  }

  #push(event: WatchEvent): void {
    this.#events.push(event)
    this.#bytes += eventBytes(event)
  }

  /** Index of the first event with a revision above `after` (binary search). */
  #firstAfter(after: number): number {
    let lo = this.#head
    let hi = this.#events.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#events[mid]!.modRevision <= after) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

type SnapshotField = string | number | boolean | null | [number, string]

const snapshotValue = (e: WatchEvent, isCurrent: boolean, before: string | undefined): SnapshotField => {
  if (e.value === undefined) return null
  if (isCurrent) return true
  if (before !== undefined && before.length > 0 && e.value.length > before.length && e.value.startsWith(before)) {
    return [before.length, e.value.slice(before.length)]
  }
  return e.value
}

/** The value a snapshot field stands for, or something invalid (left for the caller to refuse). */
const storedValue = (
  stored: unknown,
  revision: unknown,
  entry: KvEntry | undefined,
  before: string | undefined,
): unknown => {
  if (stored === true) return entry !== undefined && entry.modRevision === revision ? entry.value : undefined
  if (!Array.isArray(stored)) return stored
  const [n, suffix] = stored as unknown[]
  if (before === undefined || !isCount(n) || n > before.length || typeof suffix !== "string") return undefined
  return before.slice(0, n) + suffix
}

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0
