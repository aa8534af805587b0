/**
 * A reader for the plain msgpack that commands are made of: arrays, ASCII strings, integers,
 * floats, nil and booleans. It gives exactly what `@msgpack/msgpack`'s Decoder gives for
 * those bytes, several times faster: a log tail of a million puts is decoded before a restarted
 * replica serves, and the generic decoder builds each short string one code unit at a time.
 *
 * Anything else (a non-ASCII string, a map, binary, an extension, bytes left over or missing) is `notPlain`: the caller hands those bytes to the generic decoder, which stays
 * the authority on them. Non-ASCII strings go there because its way with unusual UTF-8 (lone
 * surrogates, which its encoder writes for short strings) is not the platform's.
 */
import { float, latin1, u16, u32 } from "./msgpackBytes.ts"

/** The bytes hold something this reader leaves to the generic decoder. */
export const notPlain: unique symbol = Symbol("notPlain")

export type PlainValue = string | number | boolean | null | PlainValue[]

/** Nesting deeper than this is left to the generic decoder (commands nest three deep). */
const maxDepth = 8

class PlainReader {
  at = 0
  readonly #bytes: Uint8Array

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes
  }

  get end(): number {
    return this.#bytes.length
  }

  /** The value at `at`, or `notPlain`; never reads past the end. */
  value(depth: number): PlainValue | typeof notPlain {
    const bytes = this.#bytes
    if (this.at >= bytes.length) return notPlain
    const head = bytes[this.at++]!
    if (head <= 0x7f) return head
    if (head >= 0xe0) return head - 0x100
    if (head >= 0xa0 && head <= 0xbf) return this.#string(head & 0x1f)
    if (head >= 0x90 && head <= 0x9f) return this.#array(head & 0x0f, depth)
    switch (head) {
      case 0xc0:
        return null
      case 0xc2:
        return false
      case 0xc3:
        return true
      case 0xcc:
        return this.#fixed(1) ? bytes[this.at - 1]! : notPlain
      case 0xcd:
        return this.#fixed(2) ? u16(bytes, this.at - 2) : notPlain
      case 0xce:
        return this.#fixed(4) ? u32(bytes, this.at - 4) : notPlain
      case 0xd0:
        return this.#fixed(1) ? (bytes[this.at - 1]! << 24) >> 24 : notPlain
      case 0xd1:
        return this.#fixed(2) ? (u16(bytes, this.at - 2) << 16) >> 16 : notPlain
      case 0xd2:
        return this.#fixed(4) ? u32(bytes, this.at - 4) | 0 : notPlain
      case 0xcf:
        return this.#fixed(8) ? u32(bytes, this.at - 8) * 4294967296 + u32(bytes, this.at - 4) : notPlain
      case 0xd3:
        return this.#fixed(8) ? (u32(bytes, this.at - 8) | 0) * 4294967296 + u32(bytes, this.at - 4) : notPlain
      case 0xca:
        return this.#fixed(4) ? float(bytes, this.at - 4, 4) : notPlain
      case 0xcb:
        return this.#fixed(8) ? float(bytes, this.at - 8, 8) : notPlain
      case 0xd9:
        return this.#fixed(1) ? this.#string(bytes[this.at - 1]!) : notPlain
      case 0xda:
        return this.#fixed(2) ? this.#string(u16(bytes, this.at - 2)) : notPlain
      case 0xdc:
        return this.#fixed(2) ? this.#array(u16(bytes, this.at - 2), depth) : notPlain
      default:
        return notPlain
    }
  }

  /** Whether `n` more bytes are there; moves past them. */
  #fixed(n: number): boolean {
    this.at += n
    return this.at <= this.#bytes.length
  }

  #string(length: number): string | typeof notPlain {
    const start = this.at
    const end = start + length
    if (end > this.#bytes.length) return notPlain
    const bytes = this.#bytes
    for (let i = start; i < end; i++) if (bytes[i]! >= 0x80) return notPlain
    this.at = end
    return latin1(bytes, start, end)
  }

  #array(length: number, depth: number): PlainValue[] | typeof notPlain {
    // Each item takes at least a byte: a longer count is damage, for the generic decoder to report.
    if (depth >= maxDepth || length > this.#bytes.length - this.at) return notPlain
    const items: PlainValue[] = new Array(length)
    for (let i = 0; i < length; i++) {
      const item = this.value(depth + 1)
      if (item === notPlain) return notPlain
      items[i] = item
    }
    return items
  }
}

/** The one msgpack value that `bytes` holds exactly, or `notPlain`. */
export const readPlainMsgpack = (bytes: Uint8Array): PlainValue | typeof notPlain => {
  const reader = new PlainReader(bytes)
  const value = reader.value(0)
  return reader.at === reader.end ? value : notPlain
}
