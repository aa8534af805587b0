/**
 * The entries of a version 5 snapshot (snapshotEntries.ts), kept as the snapshot's own bytes and
 * indexed where they lie: where each entry starts, a hash table over the keys' bytes, and the
 * order of the bytes for ranges. A restart then builds no map of a million keys (inserting them
 * was half of a restore) and allocates no string until a key is read; the next snapshot copies
 * the entries nobody changed as they are.
 *
 * Immutable: EntryStore lays the changes since the snapshot over it. The bytes must not change
 * while a base reads them (a snapshot's bytes never do: Raft keeps them as they are).
 *
 * Byte order of UTF-8 is code point order, which is `compareKeys` order for well-formed keys, so a
 * key asked for is put in UTF-8 and compared as bytes. A key holding a lone surrogate matches no
 * stored key (their bytes are UTF-8) and is ranked among them by compareKeys itself.
 */
import { compareKeys } from "./orderedKeys.ts"
import { type EntryFields, varintBytes } from "./snapshotEntries.ts"

/** An entry of the base, read from its bytes; its value is decoded on first read. */
export class BaseEntry implements EntryFields {
  #value: string | undefined
  readonly #source: Buffer
  readonly #start: number
  readonly #end: number
  readonly createRevision: number
  readonly modRevision: number
  readonly version: number

  constructor(
    source: Buffer,
    start: number,
    end: number,
    createRevision: number,
    modRevision: number,
    version: number,
  ) {
    this.#source = source
    this.#start = start
    this.#end = end
    this.createRevision = createRevision
    this.modRevision = modRevision
    this.version = version
  }

  get value(): string {
    this.#value ??= this.#source.toString("utf8", this.#start, this.#end)
    return this.#value
  }
}

/** FNV-1a, 32 bits, over `bytes[start, end)`. */
export const hashBytes = (bytes: Uint8Array, start: number, end: number): number => {
  let hash = 0x811c9dc5
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193)
  return hash >>> 0
}

/** Byte order of `a[aStart, aEnd)` and `b[bStart, bEnd)`: negative, 0 or positive. */
export const compareBytes = (
  a: Uint8Array,
  aStart: number,
  aEnd: number,
  b: Uint8Array,
  bStart: number,
  bEnd: number,
) => {
  const n = Math.min(aEnd - aStart, bEnd - bStart)
  for (let i = 0; i < n; i++) {
    const d = a[aStart + i]! - b[bStart + i]!
    if (d !== 0) return d
  }
  return aEnd - aStart - (bEnd - bStart)
}

/** Why a base cannot be built: the bytes are damaged. */
export class EntriesCorrupt extends Error {}

/** Slots of the hash table over `count` entries: a power of two, at most half full. */
export const tableSlotsFor = (count: number): number => 2 ** Math.ceil(Math.log2(Math.max(2, count * 2)))

/** What indexing a base's bytes yields. */
export interface EntryIndex {
  readonly buffer: Buffer
  readonly count: number
  readonly maxRevision: number
  readonly end: number
  readonly keyStarts: Uint32Array | Float64Array
  readonly keyLengths: Uint32Array
  readonly hashes: Uint32Array
  readonly table: Int32Array
  readonly mask: number
}

/**
 * Indexes the entries of a base a slice at a time, so that a running replica can index a new
 * snapshot's million entries (≈0.4 s) without holding its event loop that long. Checks what
 * EntryBase's constructor says; the bytes must not change meanwhile.
 */
export class EntryBaseBuilder {
  readonly #buffer: Buffer
  readonly #count: number
  readonly #keyStarts: Uint32Array | Float64Array
  readonly #keyLengths: Uint32Array
  readonly #hashes: Uint32Array
  readonly #table: Int32Array
  readonly #mask: number
  #at = 0
  #i = 0
  #maxRevision = 0
  #previousStart = 0
  #previousEnd = 0
  /** Slots of the hash table written once so far: see `step`. */
  #tableTouched = 0
  #done: EntryBase | undefined

  constructor(bytes: Uint8Array, count: number) {
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
    // Every entry takes at least 5 bytes (two lengths and three numbers): a larger count is damage.
    if (count * 5 > bytes.length) throw new EntriesCorrupt(`${count} entries cannot fit in ${bytes.length} bytes`)
    this.#buffer = buffer
    this.#count = count
    const slots = tableSlotsFor(count)
    this.#table = new Int32Array(slots)
    this.#mask = slots - 1
    // Offsets fit 32 bits below 4 GiB (always, under maxSnapshotBytes' default): half the memory to fault in.
    this.#keyStarts = bytes.length < 2 ** 32 ? new Uint32Array(count) : new Float64Array(count)
    this.#keyLengths = new Uint32Array(count)
    this.#hashes = new Uint32Array(count)
  }

  /** Indexes up to `maxEntries` more entries; the base once every entry is indexed. */
  step(maxEntries: number): EntryBase | undefined {
    if (this.#done !== undefined) return this.#done
    // The table's fresh pages fault in on first write (≈15 µs a page here), and keys hash all over
    // it: written in order first, a slice at a time, the first slices of keys do not fault in most
    // of its pages at once.
    if (maxEntries !== Number.POSITIVE_INFINITY && this.#tableTouched < this.#table.length) {
      const to = Math.min(this.#table.length, this.#tableTouched + maxEntries * 32)
      this.#table.fill(0, this.#tableTouched, to)
      this.#tableTouched = to
      return undefined
    }
    const buffer = this.#buffer
    const count = this.#count
    const end = buffer.length
    let at = this.#at
    let i = this.#i
    let maxRevision = this.#maxRevision
    let previousStart = this.#previousStart
    let previousEnd = this.#previousEnd
    const varint = (): number => {
      let n = 0
      let scale = 1
      for (let k = 0; k < 8; k++) {
        if (at >= end) throw new EntriesCorrupt(`entry ends inside a number at byte ${at}`)
        const byte = buffer[at++]!
        n += (byte & 0x7f) * scale
        if (byte < 0x80) {
          if (!Number.isSafeInteger(n)) break
          return n
        }
        scale *= 0x80
      }
      throw new EntriesCorrupt(`an entry holds a number above 2^53 at byte ${at}`)
    }
    const until = i + maxEntries
    for (; at < end && i < until; i++) {
      if (i >= count) throw new EntriesCorrupt(`entry ${i} is beyond the count`)
      const entryStart = at
      const keyLength = varint()
      const keyStart = at
      // `start(i)` counts back from the key, so its length must take the fewest bytes (as written).
      if (keyStart - entryStart !== varintBytes(keyLength)) {
        throw new EntriesCorrupt(`entry ${i}'s key length is not in its shortest form`)
      }
      const keyEnd = keyStart + keyLength
      if (keyEnd > end) throw new EntriesCorrupt(`an entry's string runs past the end at byte ${at}`)
      let ascii = true
      let hash = 0x811c9dc5
      for (let k = keyStart; k < keyEnd; k++) {
        const byte = buffer[k]!
        if (byte >= 0x80) ascii = false
        hash = Math.imul(hash ^ byte, 0x01000193)
      }
      if (!ascii && !isUtf8(buffer, keyStart, keyEnd)) throw new EntriesCorrupt(`entry ${i}'s key is not UTF-8`)
      if (i > 0 && compareBytes(buffer, previousStart, previousEnd, buffer, keyStart, keyEnd) >= 0) {
        throw new EntriesCorrupt(`entry ${i} is out of order`)
      }
      at = keyEnd
      const valueLength = varint()
      if (at + valueLength > end) throw new EntriesCorrupt(`an entry's string runs past the end at byte ${at}`)
      at += valueLength
      const createRevision = varint()
      const modRevision = createRevision + varint()
      const version = varint()
      if (createRevision < 1 || version < 1 || !Number.isSafeInteger(modRevision)) {
        throw new EntriesCorrupt(`entry ${i} has invalid metadata`)
      }
      if (modRevision > maxRevision) maxRevision = modRevision
      this.#keyStarts[i] = keyStart
      this.#keyLengths[i] = keyLength
      this.#hashes[i] = hash >>> 0
      let slot = hash & this.#mask
      while (this.#table[slot] !== 0) slot = (slot + 1) & this.#mask
      this.#table[slot] = i + 1
      previousStart = keyStart
      previousEnd = keyEnd
    }
    this.#at = at
    this.#i = i
    this.#maxRevision = maxRevision
    this.#previousStart = previousStart
    this.#previousEnd = previousEnd
    if (at < end) return undefined
    if (i !== count) throw new EntriesCorrupt(`${i} entries, the head says ${count}`)
    this.#done = new EntryBase(buffer, count, {
      buffer,
      count,
      maxRevision,
      end: at,
      keyStarts: this.#keyStarts,
      keyLengths: this.#keyLengths,
      hashes: this.#hashes,
      table: this.#table,
      mask: this.#mask,
    })
    return this.#done
  }
}

export class EntryBase {
  /** Entries, in key order. */
  readonly count: number
  /** The highest modRevision of any entry (0 when empty). */
  readonly maxRevision: number
  readonly #bytes: Buffer
  /** Where the last entry ends. */
  readonly #end: number
  /** Where entry i's key starts (after its length) and how long it is. */
  readonly #keyStarts: Uint32Array | Float64Array
  readonly #keyLengths: Uint32Array
  readonly #hashes: Uint32Array
  /** Open addressing, linear probing: entry index + 1, 0 for an empty slot. */
  readonly #table: Int32Array
  readonly #mask: number
  /** The key being looked up, as bytes (grown as needed). */
  #probe = new Uint8Array(256)

  static readonly empty = new EntryBase(new Uint8Array(0), 0, {
    buffer: Buffer.alloc(0),
    count: 0,
    maxRevision: 0,
    end: 0,
    keyStarts: new Uint32Array(0),
    keyLengths: new Uint32Array(0),
    hashes: new Uint32Array(0),
    table: new Int32Array(2),
    mask: 1,
  })

  /**
   * Indexes `count` entries laid out as snapshotEntries.ts says; throws EntriesCorrupt if the bytes
   * hold another number of entries, keys out of order or not UTF-8, or invalid metadata.
   * (`index` is EntryBaseBuilder's finished work.)
   */
  constructor(bytes: Uint8Array, count: number, index?: EntryIndex) {
    const built = index ?? new EntryBaseBuilder(bytes, count).step(Number.POSITIVE_INFINITY)!.#index()
    this.#bytes = built.buffer
    this.count = built.count
    this.maxRevision = built.maxRevision
    this.#end = built.end
    this.#keyStarts = built.keyStarts
    this.#keyLengths = built.keyLengths
    this.#hashes = built.hashes
    this.#table = built.table
    this.#mask = built.mask
  }

  #index(): EntryIndex {
    return {
      buffer: this.#bytes,
      count: this.count,
      maxRevision: this.maxRevision,
      end: this.#end,
      keyStarts: this.#keyStarts,
      keyLengths: this.#keyLengths,
      hashes: this.#hashes,
      table: this.#table,
      mask: this.#mask,
    }
  }

  /** The index over the entries (entryIndexSection.ts stores it in a snapshot). */
  get index(): EntryIndex {
    return this.#index()
  }

  /** The bytes the entries are read from. */
  get bytes(): Buffer {
    return this.#bytes
  }

  /** Where entry i starts in `bytes` (i = count: the end). */
  start(i: number): number {
    if (i === this.count) return this.#end
    return this.#keyStarts[i]! - varintBytes(this.#keyLengths[i]!)
  }

  /** The index of `key`, or -1. */
  find(key: string): number {
    if (this.count === 0) return -1
    const length = this.#encode(key)
    if (length < 0) return -1
    const probe = this.#probe
    const hash = hashBytes(probe, 0, length)
    const bytes = this.#bytes
    for (let slot = hash & this.#mask; ; slot = (slot + 1) & this.#mask) {
      const entry = this.#table[slot]!
      if (entry === 0) return -1
      const i = entry - 1
      if (this.#hashes[i] !== hash || this.#keyLengths[i] !== length) continue
      const keyStart = this.#keyStarts[i]!
      if (compareBytes(bytes, keyStart, keyStart + length, probe, 0, length) === 0) return i
    }
  }

  /** The first index whose key is at or above `key` (count if none). */
  lowerBound(key: string): number {
    const length = this.#encode(key)
    if (length < 0) return this.#lowerBoundByString(key)
    const probe = this.#probe
    const bytes = this.#bytes
    let lo = 0
    let hi = this.count
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const keyStart = this.#keyStarts[mid]!
      if (compareBytes(bytes, keyStart, keyStart + this.#keyLengths[mid]!, probe, 0, length) < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /**
   * `lowerBound` of a key holding a lone surrogate, which compareKeys ranks as the code points of
   * a pair (above U+FFFF) and no byte string does: compares decoded keys (rare, and 20 of them).
   */
  #lowerBoundByString(key: string): number {
    let lo = 0
    let hi = this.count
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareKeys(this.key(mid), key) < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** The key of entry i. */
  key(i: number): string {
    const keyStart = this.#keyStarts[i]!
    return this.#bytes.toString("utf8", keyStart, keyStart + this.#keyLengths[i]!)
  }

  /** Entry i's value and metadata. */
  entry(i: number): BaseEntry {
    const bytes = this.#bytes
    let at = this.#keyStarts[i]! + this.#keyLengths[i]!
    const varint = (): number => {
      let n = 0
      let scale = 1
      for (;;) {
        const byte = bytes[at++]!
        n += (byte & 0x7f) * scale
        if (byte < 0x80) return n
        scale *= 0x80
      }
    }
    const valueLength = varint()
    const valueStart = at
    at += valueLength
    const createRevision = varint()
    const modRevision = createRevision + varint()
    return new BaseEntry(bytes, valueStart, valueStart + valueLength, createRevision, modRevision, varint())
  }

  /** Puts `key` in `#probe` as UTF-8 and returns its length, or -1 if it holds a lone surrogate. */
  #encode(key: string): number {
    if (this.#probe.length < key.length * 3) this.#probe = new Uint8Array(key.length * 3)
    const out = this.#probe
    let n = 0
    for (let k = 0; k < key.length; k++) {
      const c = key.charCodeAt(k)
      if (c < 0x80) out[n++] = c
      else if (c < 0x800) {
        out[n++] = 0xc0 | (c >> 6)
        out[n++] = 0x80 | (c & 0x3f)
      } else if (c >= 0xd800 && c <= 0xdbff && k + 1 < key.length && (key.charCodeAt(k + 1) & 0xfc00) === 0xdc00) {
        const point = 0x10000 + ((c - 0xd800) << 10) + (key.charCodeAt(++k) - 0xdc00)
        out[n++] = 0xf0 | (point >> 18)
        out[n++] = 0x80 | ((point >> 12) & 0x3f)
        out[n++] = 0x80 | ((point >> 6) & 0x3f)
        out[n++] = 0x80 | (point & 0x3f)
      } else {
        if (c >= 0xd800 && c <= 0xdfff) return -1
        out[n++] = 0xe0 | (c >> 12)
        out[n++] = 0x80 | ((c >> 6) & 0x3f)
        out[n++] = 0x80 | (c & 0x3f)
      }
    }
    return n
  }
}

/** Whether `bytes[start, end)` is UTF-8 (what decoding and encoding again gives back). */
export const isUtf8 = (bytes: Buffer, start: number, end: number): boolean => {
  const text = bytes.toString("utf8", start, end)
  return Buffer.byteLength(text, "utf8") === end - start && Buffer.from(text, "utf8").equals(bytes.subarray(start, end))
}
