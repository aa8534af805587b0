/**
 * The keys of a store with their values and metadata: the entries of the last version 5 snapshot
 * as they lie in its bytes (EntryBase), with the changes since laid over them. A restart reads a
 * million keys without inserting them anywhere, and each snapshot folds the changes back into a
 * new base, so the overlay holds only what changed since the last snapshot.
 *
 * Invariants:
 *   - a key is present iff it is in `#changed`, or it is a base entry not marked in `#shadowed`;
 *   - `#shadowed[i]` is 1 iff base entry i was written or deleted since the base was made (its
 *     state is then `#changed`'s: there if written, absent if deleted);
 *   - `#added` holds exactly the keys of `#changed` that are not in the base, in key order (a
 *     rewritten base key keeps its place in the base's order).
 *
 * A snapshot is written from a frozen view (`freeze`) a slice at a time while the store goes on
 * changing: the view shares the base, `#shadowed` less the marks made since (`#shadowedSince`) and
 * a copy-on-write copy of `#added`;
 * for the overlay, the store remembers in `#prior` what each key changed since held at the freeze
 * (and stops changing those entries in place), so the view reads the live overlay for the others.
 * `rebaseFrozen` then makes the written bytes the base and keeps only the changes since the freeze.
 */
import { EntryBase } from "./entryBase.ts"
import { compareKeys, OrderedKeys } from "./orderedKeys.ts"
import type { EntriesWriter } from "./snapshotEntries.ts"

export interface StoredEntry {
  readonly value: string
  readonly version: number
  readonly modRevision: number
  readonly createRevision: number
}

/** An entry written since the base: the store changes it in place. */
interface ChangedEntry {
  value: string
  version: number
  modRevision: number
  createRevision: number
  /** Its index in the base, -1 if the base does not hold the key. */
  readonly baseIndex: number
}

export class EntryStore {
  #base: EntryBase
  #shadowed: Uint8Array
  #shadowedCount = 0
  #changed = new Map<string, ChangedEntry>()
  #added = new OrderedKeys()
  /**
   * While a frozen view is out: for every key changed since the freeze, its overlay entry then
   * (undefined if the overlay did not hold it). That entry object is never changed again.
   */
  #prior: Map<string, ChangedEntry | undefined> | undefined
  /** While a frozen view is out: the base entries marked in `#shadowed` since the freeze. */
  #shadowedSince: Set<number> | undefined

  constructor(base: EntryBase = EntryBase.empty) {
    this.#base = base
    this.#shadowed = new Uint8Array(base.count)
  }

  /** A store over the entries of a version 5 snapshot (see EntryBase for what is checked). */
  static fromSnapshotEntries(bytes: Uint8Array, count: number): EntryStore {
    return new EntryStore(new EntryBase(bytes, count))
  }

  /** A store holding `entries[i]` under `keys[i]` (distinct keys, in any order), with no base. */
  static fromEntries(keys: readonly string[], entries: readonly StoredEntry[]): EntryStore {
    const store = new EntryStore()
    for (let i = 0; i < keys.length; i++) {
      const { value, version, modRevision, createRevision } = entries[i]!
      store.#changed.set(keys[i]!, { value, version, modRevision, createRevision, baseIndex: -1 })
    }
    store.#added = OrderedKeys.of(keys)
    return store
  }

  /** The highest modRevision of the base's entries (what a restore checks the revision against). */
  get baseMaxRevision(): number {
    return this.#base.maxRevision
  }

  get size(): number {
    return this.#base.count - this.#shadowedCount + this.#changed.size
  }

  get(key: string): StoredEntry | undefined {
    const changed = this.#changed.get(key)
    if (changed !== undefined) return changed
    const i = this.#base.find(key)
    return i < 0 || this.#shadowed[i] === 1 ? undefined : this.#base.entry(i)
  }

  has(key: string): boolean {
    if (this.#changed.has(key)) return true
    const i = this.#base.find(key)
    return i >= 0 && this.#shadowed[i] === 0
  }

  /**
   * Sets `key` to `value` at `revision`: a new key gets version 1 and createRevision `revision`,
   * a present one its next version. Returns the entry as it now is.
   */
  write(key: string, value: string, revision: number): StoredEntry {
    if (this.#prior !== undefined) this.#remember(key)
    const changed = this.#changed.get(key)
    if (changed !== undefined && this.#prior?.get(key) === changed) {
      // The frozen view still reads this object: the key gets a new one.
      const entry = { ...changed, value, version: changed.version + 1, modRevision: revision }
      this.#changed.set(key, entry)
      return entry
    }
    if (changed !== undefined) {
      changed.value = value
      changed.version++
      changed.modRevision = revision
      return changed
    }
    const baseIndex = this.#base.find(key)
    let entry: ChangedEntry
    if (baseIndex >= 0 && this.#shadowed[baseIndex] === 0) {
      const { version, createRevision } = this.#base.entry(baseIndex)
      entry = { value, version: version + 1, modRevision: revision, createRevision, baseIndex }
      this.#shadow(baseIndex)
    } else {
      entry = { value, version: 1, modRevision: revision, createRevision: revision, baseIndex }
      if (baseIndex < 0) this.#added.insert(key)
    }
    this.#changed.set(key, entry)
    return entry
  }

  /** Removes `key`, which must be present. */
  delete(key: string): void {
    if (this.#prior !== undefined) this.#remember(key)
    const changed = this.#changed.get(key)
    if (changed !== undefined) {
      this.#changed.delete(key)
      if (changed.baseIndex < 0) this.#added.remove(key)
      return
    }
    const i = this.#base.find(key)
    if (i < 0 || this.#shadowed[i] === 1) throw new Error(`EntryStore: ${JSON.stringify(key)} is not present`)
    this.#shadow(i)
  }

  /**
   * Keys with their entries in order, from the first key above `after` (from the first at or above
   * `from` when `after` is undefined or below it); the caller stops when it has enough.
   */
  *entries(from: string, after?: string): Generator<readonly [string, StoredEntry]> {
    const start = after !== undefined && compareKeys(after, from) >= 0 ? after : from
    const exclusive = start === after
    const fromBase = this.#baseEntries(start, exclusive)
    const added = this.#added.from(from, after)
    let a = fromBase.next()
    let b = added.next()
    while (!a.done || !b.done) {
      // A base key and an added key are never equal.
      if (b.done || (!a.done && compareKeys(a.value[0], b.value) < 0)) {
        yield a.value as readonly [string, StoredEntry]
        a = fromBase.next()
      } else {
        yield [b.value, this.#changed.get(b.value)!]
        b = added.next()
      }
    }
  }

  /** About how many bytes a frozen view's `write` writes. */
  entriesBytesEstimate(): number {
    return this.#base.start(this.#base.count) + this.#changed.size * 128
  }

  /**
   * A view of the entries as they are now, which later changes leave as it is, for writing a
   * snapshot in slices. Ends with `rebaseFrozen` (the snapshot written) or `thaw` (given up);
   * one view at a time.
   */
  freeze(): FrozenEntries {
    if (this.#prior !== undefined) throw new Error("EntryStore: a frozen view is already out")
    const prior = new Map<string, ChangedEntry | undefined>()
    this.#prior = prior
    const since = new Set<number>()
    this.#shadowedSince = since
    const changed = this.#changed
    const shadowed = this.#shadowed
    return new FrozenEntries(
      this.#base,
      // Marks only go from 0 to 1 until the next base, so the view's are today's less the new ones.
      (i) => shadowed[i] === 1 && !since.has(i),
      this.#added.freeze(),
      (key) => (prior.has(key) ? prior.get(key) : changed.get(key)),
      this.size,
      this.entriesBytesEstimate(),
    )
  }

  /** Ends the frozen view without a new base. */
  thaw(): void {
    this.#prior = undefined
    this.#shadowedSince = undefined
  }

  /**
   * Makes `base` (what the frozen view's `write` wrote, indexed) the new base, keeping as the
   * overlay only what changed since the freeze; ends the frozen view.
   */
  rebaseFrozen(base: EntryBase): void {
    const prior = this.#prior
    if (prior === undefined) throw new Error("EntryStore: no frozen view to rebase on")
    const changed = this.#changed
    this.#prior = undefined
    this.#shadowedSince = undefined
    this.#base = base
    this.#shadowed = new Uint8Array(base.count)
    this.#shadowedCount = 0
    this.#changed = new Map()
    this.#added = new OrderedKeys()
    for (const key of prior.keys()) {
      const live = changed.get(key)
      const baseIndex = base.find(key)
      if (baseIndex >= 0) this.#shadow(baseIndex)
      if (live === undefined) continue
      const { value, version, modRevision, createRevision } = live
      this.#changed.set(key, { value, version, modRevision, createRevision, baseIndex })
      if (baseIndex < 0) this.#added.insert(key)
    }
  }

  #remember(key: string): void {
    const prior = this.#prior!
    if (!prior.has(key)) prior.set(key, this.#changed.get(key))
  }

  *#baseEntries(start: string, exclusive: boolean): Generator<readonly [string, StoredEntry]> {
    const base = this.#base
    for (let i = base.lowerBound(start); i < base.count; i++) {
      const key = base.key(i)
      if (exclusive && key === start) continue
      if (this.#shadowed[i] === 0) yield [key, base.entry(i)]
      else {
        const changed = this.#changed.get(key)
        if (changed !== undefined) yield [key, changed]
      }
    }
  }

  #shadow(i: number): void {
    this.#shadowedSince?.add(i)
    this.#shadowed[i] = 1
    this.#shadowedCount++
  }
}

/**
 * The entries of a store as they were at its `freeze`: the base, which base entries the overlay
 * replaced, the added keys in order, and the overlay's entries then (`changedAt`).
 */
export class FrozenEntries {
  constructor(
    readonly base: EntryBase,
    /** Whether base entry i had been replaced or deleted (its state is then the overlay's). */
    readonly shadowed: (i: number) => boolean,
    readonly added: OrderedKeys,
    readonly changedAt: (key: string) => StoredEntry | undefined,
    readonly size: number,
    readonly bytesEstimate: number,
  ) {}

  /**
   * Adds every entry to `writer` in key order, copying the base's unchanged entries as they are;
   * yields whenever about `sliceBytes` of work is done (a written entry counts its bytes and 512
   * more). Returns false if the writer refused one (a string that is not well-formed UTF-16).
   */
  *write(writer: EntriesWriter, sliceBytes: number): Generator<void, boolean> {
    const { base, shadowed } = this
    const bytes = base.bytes
    let cursor = 0
    let work = 0
    const copyRaw = function* (from: number, to: number): Generator<void> {
      while (to - from > sliceBytes - work) {
        const until = from + Math.max(0, sliceBytes - work)
        writer.addRaw(bytes, from, until)
        from = until
        work = 0
        yield
      }
      writer.addRaw(bytes, from, to)
      work += to - from
    }
    const changedAt = this.changedAt
    /** Base entries [cursor, until): unchanged runs copied, changed ones written from the overlay. */
    const copyBase = function* (until: number): Generator<void, boolean> {
      let runStart = cursor
      for (let i = cursor; i < until; i++) {
        if (!shadowed(i)) {
          // A long unchanged run is scanned a slice at a time too.
          if ((i & 0x3fff) === 0x3fff) {
            yield* copyRaw(base.start(runStart), base.start(i))
            runStart = i
          }
          continue
        }
        yield* copyRaw(base.start(runStart), base.start(i))
        runStart = i + 1
        const key = base.key(i)
        const changed = changedAt(key)
        if (changed !== undefined) {
          if (!writer.add(key, changed)) return false
          work += 512 + key.length + changed.value.length
        }
        if (work >= sliceBytes) {
          work = 0
          yield
        }
      }
      yield* copyRaw(base.start(runStart), base.start(until))
      cursor = until
      return true
    }
    for (const key of this.added.all()) {
      if (!(yield* copyBase(base.lowerBound(key)))) return false
      const entry = changedAt(key)!
      if (!writer.add(key, entry)) return false
      work += 512 + key.length + entry.value.length
      if (work >= sliceBytes) {
        work = 0
        yield
      }
    }
    return yield* copyBase(base.count)
  }

  /** The entry of `key` at the freeze, or undefined if absent. */
  get(key: string): StoredEntry | undefined {
    const changed = this.changedAt(key)
    if (changed !== undefined) return changed
    const i = this.base.find(key)
    return i < 0 || this.shadowed(i) ? undefined : this.base.entry(i)
  }

  /** Keys with their entries in order (for the msgpack snapshot of a store `write` refused). */
  *entries(): Generator<readonly [string, StoredEntry]> {
    const { base, shadowed } = this
    const added = this.added.all()
    let a = added.next()
    for (let i = 0; i <= base.count; i++) {
      const key = i < base.count ? base.key(i) : undefined
      while (!a.done && (key === undefined || compareKeys(a.value, key) < 0)) {
        yield [a.value, this.changedAt(a.value)!]
        a = added.next()
      }
      if (key === undefined) break
      if (!shadowed(i)) yield [key, base.entry(i)]
      else {
        const changed = this.changedAt(key)
        if (changed !== undefined) yield [key, changed]
      }
    }
  }
}
