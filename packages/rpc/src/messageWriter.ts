/**
 * The msgpack writer for what the wire mostly carries: plain objects, arrays, ASCII strings,
 * numbers, booleans, null and binary. For those values it writes exactly the bytes
 * `@msgpack/msgpack`'s Encoder (with `ignoreUndefined`) writes, without its per-object extension
 * lookup, its UTF-8 length pass and its key counting pass: every request, reply and Raft batch is
 * encoded once per hop. Anything else (a non-ASCII string, a class instance, a Date, a typed array
 * other than bytes, a bigint, nesting past the generic encoder's bound) is undefined: the caller
 * hands the value to the generic encoder, which stays the authority on it.
 */

/** The generic encoder's default maxDepth: past it, it throws (and so should the caller). */
const MAX_DEPTH = 100

class Writer {
  bytes = new Uint8Array(2048)
  view = new DataView(this.bytes.buffer)
  at = 0

  room(n: number): void {
    if (this.at + n <= this.bytes.length) return
    const grown = new Uint8Array(Math.max(2 * this.bytes.length, this.at + n))
    grown.set(this.bytes.subarray(0, this.at))
    this.bytes = grown
    this.view = new DataView(grown.buffer)
  }

  /** False when the value is one for the generic encoder. */
  value(x: unknown, depth: number): boolean {
    if (x === null || x === undefined) {
      this.room(1)
      this.bytes[this.at++] = 0xc0
      return true
    }
    switch (typeof x) {
      case "boolean":
        this.room(1)
        this.bytes[this.at++] = x ? 0xc3 : 0xc2
        return true
      case "number":
        this.number(x)
        return true
      case "string":
        return this.string(x)
      case "object":
        if (depth >= MAX_DEPTH) return false
        if (Array.isArray(x)) return this.array(x, depth)
        if (x instanceof Uint8Array) {
          this.binary(x)
          return true
        }
        return this.map(x, depth)
      default:
        return false
    }
  }

  number(x: number): void {
    this.room(9)
    const bytes = this.bytes
    const view = this.view
    if (Number.isSafeInteger(x)) {
      if (x >= 0) {
        if (x < 0x80) bytes[this.at++] = x
        else if (x < 0x100) {
          bytes[this.at++] = 0xcc
          bytes[this.at++] = x
        } else if (x < 0x10000) {
          bytes[this.at++] = 0xcd
          view.setUint16(this.at, x)
          this.at += 2
        } else if (x < 0x100000000) {
          bytes[this.at++] = 0xce
          view.setUint32(this.at, x)
          this.at += 4
        } else {
          bytes[this.at++] = 0xcf
          view.setUint32(this.at, Math.floor(x / 0x100000000))
          view.setUint32(this.at + 4, x >>> 0)
          this.at += 8
        }
      } else if (x >= -0x20) bytes[this.at++] = 0xe0 | (x + 0x20)
      else if (x >= -0x80) {
        bytes[this.at++] = 0xd0
        view.setInt8(this.at++, x)
      } else if (x >= -0x8000) {
        bytes[this.at++] = 0xd1
        view.setInt16(this.at, x)
        this.at += 2
      } else if (x >= -0x80000000) {
        bytes[this.at++] = 0xd2
        view.setInt32(this.at, x)
        this.at += 4
      } else {
        bytes[this.at++] = 0xd3
        view.setInt32(this.at, Math.floor(x / 0x100000000))
        view.setUint32(this.at + 4, x >>> 0)
        this.at += 8
      }
      return
    }
    bytes[this.at++] = 0xcb
    view.setFloat64(this.at, x)
    this.at += 8
  }

  string(x: string): boolean {
    const length = x.length
    this.room(5 + length)
    const bytes = this.bytes
    if (length < 32) bytes[this.at++] = 0xa0 + length
    else if (length < 0x100) {
      bytes[this.at++] = 0xd9
      bytes[this.at++] = length
    } else if (length < 0x10000) {
      bytes[this.at++] = 0xda
      this.view.setUint16(this.at, length)
      this.at += 2
    } else {
      bytes[this.at++] = 0xdb
      this.view.setUint32(this.at, length)
      this.at += 4
    }
    // ASCII: one byte per code unit, so the header written above is right.
    for (let i = 0; i < length; i++) {
      const code = x.charCodeAt(i)
      if (code >= 0x80) return false
      bytes[this.at++] = code
    }
    return true
  }

  binary(x: Uint8Array): void {
    const size = x.byteLength
    this.room(5 + size)
    const bytes = this.bytes
    if (size < 0x100) {
      bytes[this.at++] = 0xc4
      bytes[this.at++] = size
    } else if (size < 0x10000) {
      bytes[this.at++] = 0xc5
      this.view.setUint16(this.at, size)
      this.at += 2
    } else {
      bytes[this.at++] = 0xc6
      this.view.setUint32(this.at, size)
      this.at += 4
    }
    bytes.set(x, this.at)
    this.at += size
  }

  header(size: number, fix: number, sixteen: number): void {
    this.room(5)
    if (size < 16) this.bytes[this.at++] = fix + size
    else if (size < 0x10000) {
      this.bytes[this.at++] = sixteen
      this.view.setUint16(this.at, size)
      this.at += 2
    } else {
      this.bytes[this.at++] = sixteen + 1
      this.view.setUint32(this.at, size)
      this.at += 4
    }
  }

  array(x: readonly unknown[], depth: number): boolean {
    this.header(x.length, 0x90, 0xdc)
    for (let i = 0; i < x.length; i++) if (!this.value(x[i], depth + 1)) return false
    return true
  }

  map(x: object, depth: number): boolean {
    const proto = Object.getPrototypeOf(x)
    if (proto !== Object.prototype && proto !== null) return false
    const record = x as Record<string, unknown>
    const keys = Object.keys(record)
    // Undefined values are left out (ignoreUndefined), and the header counts what is written.
    let size = 0
    for (const key of keys) if (record[key] !== undefined) size++
    this.header(size, 0x80, 0xde)
    for (const key of keys) {
      const item = record[key]
      if (item === undefined) continue
      if (!this.string(key) || !this.value(item, depth + 1)) return false
    }
    return true
  }
}

const writer = new Writer()

/** The msgpack bytes of `value` as the generic encoder writes them, or undefined (ask it then). */
export const writeMessage = (value: unknown): Uint8Array | undefined => {
  writer.at = 0
  if (!writer.value(value, 0)) return undefined
  return writer.bytes.slice(0, writer.at)
}
