/**
 * A msgpack reader for what the wire mostly carries: maps with ASCII string keys, arrays, ASCII
 * strings, integers, floats, nil, booleans and binary. For those bytes it gives exactly what
 * `@msgpack/msgpack`'s Decoder gives (binary as a view of the input, maps as plain objects with
 * the later of two equal keys winning), about twice as fast: every request, reply and Raft batch
 * is decoded once per hop, and the generic decoder builds each short string one code unit at a time.
 *
 * Anything else (a non-ASCII string, a number or `__proto__` as a map key, an extension, a
 * length past the decoder's limits, bytes left over or missing) is `notRead`: the caller hands
 * those bytes to the generic decoder, which stays the authority on them (and on what it refuses).
 */

/** The bytes hold something this reader leaves to the generic decoder. */
export const notRead: unique symbol = Symbol("notRead")

export type ReadValue = string | number | boolean | null | Uint8Array | ReadValue[] | { [key: string]: ReadValue }

/** The generic decoder's limits this reader must not read past (it refuses longer ones). */
export interface ReaderLimits {
  readonly maxStrLength: number
  readonly maxBinLength: number
}

/** Nesting deeper than this is left to the generic decoder (envelopes nest five or six deep). */
const MAX_DEPTH = 16

const utf8 = new TextDecoder()
type Latin1Slice = (this: Uint8Array, start: number, end: number) => string
/**
 * Bun's Buffer reads Latin-1 text straight out of any Uint8Array: one string, no view of the bytes
 * (a string built a character at a time made one string per character, and every message carries
 * a few short ones: the collector ran for them).
 */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice?: Latin1Slice }).latin1Slice

/** The ASCII text in bytes [start, end), or `notRead` when a byte is not ASCII. */
const ascii = (bytes: Uint8Array, start: number, end: number): string | typeof notRead => {
  for (let i = start; i < end; i++) if (bytes[i]! >= 0x80) return notRead
  // ASCII is the same text in Latin-1 and in UTF-8.
  return latin1Slice === undefined ? utf8.decode(bytes.subarray(start, end)) : latin1Slice.call(bytes, start, end)
}

/**
 * Map keys are few and repeat in every message: each is built once and the same string is handed
 * out again, so objects are filled with known property names (a fresh string per key made map
 * reading slower than the generic decoder, which caches its keys too).
 */
const keyCache = new Map<number, string>()
const MAX_CACHED_KEYS = 4096

const keyText = (bytes: Uint8Array, start: number, end: number): string | typeof notRead => {
  let hash = end - start
  for (let i = start; i < end; i++) hash = (Math.imul(hash, 31) + bytes[i]!) | 0
  const cached = keyCache.get(hash)
  if (cached !== undefined && cached.length === end - start) {
    let same = true
    for (let i = start; i < end; i++) {
      if (cached.charCodeAt(i - start) !== bytes[i]) {
        same = false
        break
      }
    }
    if (same) return cached
  }
  const text = ascii(bytes, start, end)
  if (text !== notRead && keyCache.size < MAX_CACHED_KEYS) keyCache.set(hash, text)
  return text
}

class Reader {
  at = 0
  readonly bytes: Uint8Array
  readonly view: DataView
  readonly limits: ReaderLimits

  constructor(bytes: Uint8Array, limits: ReaderLimits) {
    this.bytes = bytes
    this.limits = limits
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  /** The value at `at`, or `notRead`; never reads past the end. */
  value(depth: number): ReadValue | typeof notRead {
    const bytes = this.bytes
    if (this.at >= bytes.length) return notRead
    const head = bytes[this.at++]!
    if (head <= 0x7f) return head
    if (head >= 0xe0) return head - 0x100
    if (head >= 0xa0 && head <= 0xbf) return this.string(head & 0x1f)
    if (head >= 0x90 && head <= 0x9f) return this.array(head & 0x0f, depth)
    if (head >= 0x80 && head <= 0x8f) return this.map(head & 0x0f, depth)
    const view = this.view
    switch (head) {
      case 0xc0:
        return null
      case 0xc2:
        return false
      case 0xc3:
        return true
      case 0xc4:
        return this.fixed(1) ? this.binary(bytes[this.at - 1]!) : notRead
      case 0xc5:
        return this.fixed(2) ? this.binary(view.getUint16(this.at - 2)) : notRead
      case 0xc6:
        return this.fixed(4) ? this.binary(view.getUint32(this.at - 4)) : notRead
      case 0xcc:
        return this.fixed(1) ? bytes[this.at - 1]! : notRead
      case 0xcd:
        return this.fixed(2) ? view.getUint16(this.at - 2) : notRead
      case 0xce:
        return this.fixed(4) ? view.getUint32(this.at - 4) : notRead
      case 0xcf:
        return this.fixed(8) ? view.getUint32(this.at - 8) * 4294967296 + view.getUint32(this.at - 4) : notRead
      case 0xd0:
        return this.fixed(1) ? view.getInt8(this.at - 1) : notRead
      case 0xd1:
        return this.fixed(2) ? view.getInt16(this.at - 2) : notRead
      case 0xd2:
        return this.fixed(4) ? view.getInt32(this.at - 4) : notRead
      case 0xd3:
        return this.fixed(8) ? view.getInt32(this.at - 8) * 4294967296 + view.getUint32(this.at - 4) : notRead
      case 0xca:
        return this.fixed(4) ? view.getFloat32(this.at - 4) : notRead
      case 0xcb:
        return this.fixed(8) ? view.getFloat64(this.at - 8) : notRead
      case 0xd9:
        return this.fixed(1) ? this.string(bytes[this.at - 1]!) : notRead
      case 0xda:
        return this.fixed(2) ? this.string(view.getUint16(this.at - 2)) : notRead
      case 0xdb:
        return this.fixed(4) ? this.string(view.getUint32(this.at - 4)) : notRead
      case 0xdc:
        return this.fixed(2) ? this.array(view.getUint16(this.at - 2), depth) : notRead
      case 0xdd:
        return this.fixed(4) ? this.array(view.getUint32(this.at - 4), depth) : notRead
      case 0xde:
        return this.fixed(2) ? this.map(view.getUint16(this.at - 2), depth) : notRead
      case 0xdf:
        return this.fixed(4) ? this.map(view.getUint32(this.at - 4), depth) : notRead
      default:
        return notRead
    }
  }

  /** Whether `n` more bytes are there; moves past them. */
  fixed(n: number): boolean {
    this.at += n
    return this.at <= this.bytes.length
  }

  string(length: number): string | typeof notRead {
    const start = this.at
    const end = start + length
    if (length > this.limits.maxStrLength || end > this.bytes.length) return notRead
    const text = ascii(this.bytes, start, end)
    if (text !== notRead) this.at = end
    return text
  }

  binary(length: number): Uint8Array | typeof notRead {
    const start = this.at
    const end = start + length
    if (length > this.limits.maxBinLength || end > this.bytes.length) return notRead
    this.at = end
    return this.bytes.subarray(start, end)
  }

  array(length: number, depth: number): ReadValue[] | typeof notRead {
    // Each item takes at least a byte: a longer count is damage, for the generic decoder to report.
    if (depth >= MAX_DEPTH || length > this.bytes.length - this.at) return notRead
    const items: ReadValue[] = new Array(length)
    for (let i = 0; i < length; i++) {
      const item = this.value(depth + 1)
      if (item === notRead) return notRead
      items[i] = item
    }
    return items
  }

  map(size: number, depth: number): { [key: string]: ReadValue } | typeof notRead {
    if (depth >= MAX_DEPTH || 2 * size > this.bytes.length - this.at) return notRead
    const out: { [key: string]: ReadValue } = {}
    for (let i = 0; i < size; i++) {
      const key = this.key()
      if (key === notRead) return notRead
      const item = this.value(depth + 1)
      if (item === notRead) return notRead
      out[key] = item
    }
    return out
  }

  /** A map key: only a short ASCII string (the generic decoder refuses `__proto__`, its business). */
  key(): string | typeof notRead {
    const bytes = this.bytes
    if (this.at >= bytes.length) return notRead
    const head = bytes[this.at]!
    let length: number
    let start: number
    if (head >= 0xa0 && head <= 0xbf) {
      length = head & 0x1f
      start = this.at + 1
    } else if (head === 0xd9 && this.at + 1 < bytes.length) {
      length = bytes[this.at + 1]!
      start = this.at + 2
    } else return notRead
    const end = start + length
    if (length > this.limits.maxStrLength || end > bytes.length) return notRead
    const key = keyText(bytes, start, end)
    if (key === notRead || key === "__proto__") return notRead
    this.at = end
    return key
  }
}

/** The one msgpack value that `bytes` holds exactly, or `notRead` (then ask the generic decoder). */
export const readMessage = (bytes: Uint8Array, limits: ReaderLimits): ReadValue | typeof notRead => {
  const reader = new Reader(bytes, limits)
  const value = reader.value(0)
  return reader.at === bytes.length ? value : notRead
}
