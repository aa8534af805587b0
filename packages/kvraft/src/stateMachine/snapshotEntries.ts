/**
 * The entries section of a version 5 store snapshot: every key with its value and metadata, in
 * key order, as plain bytes rather than msgpack. A million keys restore in a fraction of the time
 * msgpack's generic decoder takes (it allocates and dispatches per item; this reads two strings
 * with one native call each and three varints per key).
 *
 * Per entry: varint key bytes, the key (UTF-8), varint value bytes, the value (UTF-8), varint
 * createRevision, varint modRevision - createRevision, varint version. Varints are LEB128 of
 * non-negative safe integers (at most 8 bytes), in their shortest form. EntryBase reads them.
 *
 * UTF-8 cannot carry a lone surrogate, so the writer refuses strings that are not well formed;
 * the store falls back to its msgpack format for those (both restore the same state).
 */

export interface EntryFields {
  readonly value: string
  readonly createRevision: number
  readonly modRevision: number
  readonly version: number
}

/** Appends entries to a growing byte buffer. */
export class EntriesWriter {
  #buffer: Buffer
  #at = 0

  constructor(capacityBytes: number) {
    this.#buffer = Buffer.allocUnsafe(Math.max(64, capacityBytes))
  }

  /** Adds one entry; false (and nothing written) if the key or the value is not well-formed UTF-16. */
  add(key: string, entry: EntryFields): boolean {
    if (!isWellFormed(key) || !isWellFormed(entry.value)) return false
    // A UTF-16 code unit takes at most 3 bytes of UTF-8; each varint at most 8.
    this.#reserve(3 * (key.length + entry.value.length) + 40)
    this.#string(key)
    this.#string(entry.value)
    this.#varint(entry.createRevision)
    this.#varint(entry.modRevision - entry.createRevision)
    this.#varint(entry.version)
    return true
  }

  /** Adds entries already laid out: `source[start, end)`, copied as they are. */
  addRaw(source: Uint8Array, start: number, end: number): void {
    if (end <= start) return
    this.#reserve(end - start)
    this.#buffer.set(source.subarray(start, end), this.#at)
    this.#at += end - start
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#at
  }

  /** Moves past `bytes` bytes, left as they are for the caller to fill in the finished bytes. */
  skip(bytes: number): void {
    this.#reserve(bytes)
    this.#at += bytes
  }

  /** The bytes written (a view of the writer's buffer). */
  bytes(): Uint8Array {
    return this.#buffer.subarray(0, this.#at)
  }

  /**
   * The bytes written, as a plain Uint8Array: a view of the writer's buffer when little of it is
   * unused, else a copy of just the bytes (so that keeping them keeps no spare capacity).
   */
  finish(): Uint8Array {
    const buffer = this.#buffer
    if (this.#at * 5 < buffer.length * 4) return new Uint8Array(buffer.subarray(0, this.#at))
    return new Uint8Array(buffer.buffer, buffer.byteOffset, this.#at)
  }

  #string(s: string): void {
    // The length goes before the bytes, so leave room for the longest varint and move the bytes if shorter.
    const lengthAt = this.#at
    const written = this.#buffer.write(s, lengthAt + 8, "utf8")
    const lengthBytes = varintBytes(written)
    if (lengthBytes !== 8) this.#buffer.copyWithin(lengthAt + lengthBytes, lengthAt + 8, lengthAt + 8 + written)
    this.#varint(written)
    this.#at += written
  }

  #varint(n: number): void {
    const buffer = this.#buffer
    while (n >= 0x80) {
      buffer[this.#at++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    buffer[this.#at++] = n
  }

  #reserve(bytes: number): void {
    if (this.#at + bytes <= this.#buffer.length) return
    const grown = Buffer.allocUnsafe(Math.max(this.#buffer.length * 2, this.#at + bytes))
    this.#buffer.copy(grown, 0, 0, this.#at)
    this.#buffer = grown
  }
}

// ES2024's String.prototype.isWellFormed (Bun has it; the project's TypeScript lib predates it).
const isWellFormed = (s: string): boolean => (s as string & { isWellFormed(): boolean }).isWellFormed()

/** Bytes of the shortest varint of `n`. */
export const varintBytes = (n: number): number => {
  let bytes = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    bytes++
  }
  return bytes
}
