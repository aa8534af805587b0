/**
 * The index of a snapshot's entries (entryBase.ts: where each key starts, its length, its hash, and
 * the hash table), stored after the entries in a version 6 snapshot. A replica indexes the entries
 * of every snapshot it takes anyway (they become its store's base); writing that index out lets a
 * restart read it instead of building it again: building it was a third of a restarted leader's
 * work before it served (≈0.3 s for 843,600 keys on this project's 2-core machine).
 *
 * Layout: little-endian u32 arrays, one after another: keyStarts[count], keyLengths[count],
 * hashes[count], table[tableSlotsFor(count)]. Where the section lies 4-byte aligned in memory (the
 * snapshot's file mapped as a whole) the arrays are views of it; elsewhere they are copied out.
 *
 * The snapshot's bytes are checksummed by the storage, so what is checked here is the index's
 * structure in full (every offset within the entries and in order, every table slot naming an
 * entry, each entry named once; a few milliseconds a million entries, sequential), and its meaning
 * on a sample (a key's length, hash, UTF-8, order against the key before it, its place in the table,
 * its metadata): an index written wrongly fails the restore rather than serving wrong reads.
 */
import {
  compareBytes,
  EntriesCorrupt,
  EntryBase,
  type EntryIndex,
  hashBytes,
  isUtf8,
  tableSlotsFor,
} from "./entryBase.ts"
import { varintBytes } from "./snapshotEntries.ts"

/** Bytes of the index section of `count` entries. */
export const indexSectionBytes = (count: number): number => 4 * (3 * count + tableSlotsFor(count))

/** Entries this large take offsets above 32 bits, which the section does not hold: such a snapshot has none. */
export const maxIndexedEntriesBytes = 2 ** 32 - 1

/** Entries whose meaning is checked at a restore, spread evenly (the first and the last among them). */
const SAMPLED_ENTRIES = 1024

// Typed arrays are in the platform's byte order, which the section's bytes are copied from as they are.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error("entryIndexSection: big-endian platform")

/** Writes `base`'s index at `target[at, at + indexSectionBytes(base.count))`. */
export const writeIndexSection = (base: EntryBase, target: Uint8Array, at: number): void => {
  const { keyStarts, keyLengths, hashes, table } = base.index
  if (!(keyStarts instanceof Uint32Array)) throw new Error("writeIndexSection: entries above 4 GiB have no section")
  let offset = at
  for (const array of [keyStarts, keyLengths, hashes, table]) {
    target.set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength), offset)
    offset += array.byteLength
  }
}

/**
 * Reads the base over `entries` (`count` of them, the highest modRevision `maxRevision`) with the
 * index in `section`, a slice at a time as EntryBaseBuilder builds one (the words copied out where
 * unaligned, then checked); `step` throws EntriesCorrupt if the index does not fit the entries.
 */
export class IndexedBaseReader {
  readonly #entries: Buffer
  readonly #count: number
  readonly #maxRevision: number
  readonly #section: Uint8Array
  readonly #slots: number
  readonly #words: Uint32Array
  readonly #aligned: boolean
  /** Words copied out so far (when unaligned), then entries and table slots checked. */
  #copied = 0
  #checkedKeys = 0
  #previousKeyEnd = 0
  #checkedSlots = 0
  #filled = 0
  #named: Uint8Array
  #done: EntryBase | undefined

  constructor(entries: Uint8Array, count: number, maxRevision: number, section: Uint8Array) {
    this.#slots = tableSlotsFor(count)
    if (section.length !== indexSectionBytes(count)) {
      throw new EntriesCorrupt(`the stored index holds ${section.length} bytes, not ${indexSectionBytes(count)}`)
    }
    if (count * 5 > entries.length) throw new EntriesCorrupt(`${count} entries cannot fit in ${entries.length} bytes`)
    this.#entries = Buffer.from(entries.buffer, entries.byteOffset, entries.length)
    this.#count = count
    this.#maxRevision = maxRevision
    this.#section = section
    this.#aligned = section.byteOffset % 4 === 0
    this.#words = this.#aligned
      ? new Uint32Array(section.buffer, section.byteOffset, section.length / 4)
      : new Uint32Array(section.length / 4)
    this.#named = new Uint8Array(count)
  }

  /** Does up to about `maxEntries` entries' worth of work; the base once all is read and checked. */
  step(maxEntries: number): EntryBase | undefined {
    if (this.#done !== undefined) return this.#done
    const count = this.#count
    const words = this.#words
    if (!this.#aligned && this.#copied < words.length) {
      const to = Math.min(words.length, this.#copied + maxEntries * 64)
      new Uint8Array(words.buffer, this.#copied * 4, (to - this.#copied) * 4).set(
        this.#section.subarray(this.#copied * 4, to * 4),
      )
      this.#copied = to
      return undefined
    }
    const keyStarts = words.subarray(0, count)
    const keyLengths = words.subarray(count, 2 * count)
    const table = new Int32Array(words.buffer, words.byteOffset + 12 * count, this.#slots)
    if (this.#checkedKeys < count) {
      const to = Math.min(count, this.#checkedKeys + maxEntries * 32)
      this.#previousKeyEnd = checkKeys(
        keyStarts,
        keyLengths,
        this.#checkedKeys,
        to,
        this.#previousKeyEnd,
        this.#entries.length,
      )
      this.#checkedKeys = to
      return undefined
    }
    if (this.#checkedSlots < table.length) {
      const to = Math.min(table.length, this.#checkedSlots + maxEntries * 64)
      this.#filled += checkSlots(table, this.#checkedSlots, to, this.#named)
      this.#checkedSlots = to
      if (to < table.length) return undefined
      if (this.#filled !== count) throw corrupt(`table names ${this.#filled} entries, not ${count}`)
    }
    const index: EntryIndex = {
      buffer: this.#entries,
      count,
      maxRevision: this.#maxRevision,
      end: this.#entries.length,
      keyStarts,
      keyLengths,
      hashes: words.subarray(2 * count, 3 * count),
      table,
      mask: this.#slots - 1,
    }
    checkSample(index)
    this.#done = new EntryBase(this.#entries, count, index)
    return this.#done
  }
}

const corrupt = (what: string): EntriesCorrupt => new EntriesCorrupt(`the stored index ${what}`)

/** Keys `from` to `to` within the entries, each after the one before it; where the last one ends. */
const checkKeys = (
  keyStarts: Uint32Array,
  keyLengths: Uint32Array,
  from: number,
  to: number,
  previousKeyEnd: number,
  end: number,
): number => {
  let previous = previousKeyEnd
  for (let i = from; i < to; i++) {
    const keyStart = keyStarts[i]!
    const keyEnd = keyStart + keyLengths[i]!
    if (keyStart - varintBytes(keyLengths[i]!) < previous || keyEnd > end) {
      throw corrupt(`places entry ${i} outside the entries or before the one before it`)
    }
    previous = keyEnd
  }
  return previous
}

/** Table slots `from` to `to` empty or naming an entry not named before (marked in `named`); how many name one. */
const checkSlots = (table: Int32Array, from: number, to: number, named: Uint8Array): number => {
  let filled = 0
  for (let slot = from; slot < to; slot++) {
    const entry = table[slot]!
    if (entry === 0) continue
    if (entry < 0 || entry > named.length || named[entry - 1] === 1) {
      throw corrupt(`table slot ${slot} names no entry of its own`)
    }
    named[entry - 1] = 1
    filled++
  }
  return filled
}

/** A sample of entries read through the index: each is what the index says it is. */
const checkSample = (index: EntryIndex): void => {
  const { buffer, count, keyStarts, keyLengths, hashes, table, mask, end, maxRevision } = index
  if (count === 0) return
  const step = Math.max(1, Math.floor(count / SAMPLED_ENTRIES))
  const check = (i: number): void => {
    const keyStart = keyStarts[i]!
    const keyLength = keyLengths[i]!
    const keyEnd = keyStart + keyLength
    let at = keyStart - varintBytes(keyLength)
    if (i === 0 && at !== 0) throw corrupt("does not start at the first entry")
    const varint = (): number => {
      let n = 0
      let scale = 1
      for (let k = 0; k < 8 && at < end; k++) {
        const byte = buffer[at++]!
        n += (byte & 0x7f) * scale
        if (byte < 0x80) return n
        scale *= 0x80
      }
      throw corrupt(`finds no number where entry ${i} holds one`)
    }
    if (varint() !== keyLength || at !== keyStart) throw corrupt(`gives entry ${i} a key length it does not have`)
    if (hashBytes(buffer, keyStart, keyEnd) !== hashes[i])
      throw corrupt(`gives entry ${i} a hash its key does not have`)
    if (!isUtf8(buffer, keyStart, keyEnd)) throw corrupt(`points entry ${i} at a key that is not UTF-8`)
    if (i > 0) {
      const before = keyStarts[i - 1]!
      if (compareBytes(buffer, before, before + keyLengths[i - 1]!, buffer, keyStart, keyEnd) >= 0) {
        throw corrupt(`orders entry ${i} before the one before it`)
      }
    }
    let slot = hashes[i]! & mask
    while (table[slot] !== i + 1) {
      if (table[slot] === 0) throw corrupt(`leaves entry ${i} out of its place in the table`)
      slot = (slot + 1) & mask
    }
    at = keyEnd
    const valueLength = varint()
    at += valueLength
    const createRevision = varint()
    const modRevision = createRevision + varint()
    const version = varint()
    if (at > end || createRevision < 1 || version < 1 || modRevision > maxRevision) {
      throw corrupt(`points entry ${i} at invalid metadata`)
    }
    if (i === count - 1 && at !== end) throw corrupt("ends the last entry before the entries end")
    if (i < count - 1 && at !== keyStarts[i + 1]! - varintBytes(keyLengths[i + 1]!)) {
      throw corrupt(`has a gap after entry ${i}`)
    }
  }
  for (let i = 0; i < count; i += step) check(i)
  check(count - 1)
}
