/**
 * msgpack written as a list of pieces that refer to the large byte strings instead of copying
 * them, then copied into one buffer a slice at a time: a shard group's snapshot embeds every
 * shard's data, and copying tens of megabytes at once holds the event loop. The bytes are those
 * the msgpack encoder gives for the same value (msgpack is context-free, so each leaf is encoded
 * on its own; arrays and byte strings get the shortest header, as the encoder writes them).
 */
import { Encoder } from "@msgpack/msgpack"

/** A byte string given as the concatenation of its parts (filled in before it is written). */
export class Blob {
  parts: readonly Uint8Array[]
  constructor(parts: readonly Uint8Array[] = []) {
    this.parts = parts
  }
}

const leafEncoder = new Encoder()

export class SnapshotPieces {
  readonly #pieces: Uint8Array[] = []
  #length = 0

  /** Total bytes written so far. */
  get length(): number {
    return this.#length
  }

  /** Appends a value: arrays and Blobs are laid out here; anything else is encoded by msgpack. */
  add(value: unknown): this {
    if (value instanceof Blob) this.#blob(value)
    else if (value instanceof Uint8Array) this.#blob(new Blob([value]))
    else if (Array.isArray(value)) {
      this.#push(header(value.length, 0x90, 16, 0xdc, 0xdd))
      for (const item of value) this.add(item)
    } else this.#push(leafEncoder.encode(value))
    return this
  }

  /**
   * Copies the pieces into a buffer after `roomBytes` free bytes, at most about `sliceBytes` per
   * step; the generator's result is the buffer.
   */
  *copy(roomBytes: number, sliceBytes: number): Generator<void, Uint8Array> {
    const out = new Uint8Array(roomBytes + this.#length)
    let at = roomBytes
    let sinceYield = 0
    for (const piece of this.#pieces) {
      for (let from = 0; from < piece.length; ) {
        if (sinceYield >= sliceBytes) {
          yield
          sinceYield = 0
        }
        const n = Math.min(piece.length - from, sliceBytes - sinceYield)
        out.set(from === 0 && n === piece.length ? piece : piece.subarray(from, from + n), at)
        at += n
        from += n
        sinceYield += n
      }
    }
    return out
  }

  #blob(blob: Blob): void {
    let length = 0
    for (const part of blob.parts) length += part.length
    this.#push(length < 0x100 ? new Uint8Array([0xc4, length]) : header(length, -1, 0, 0xc5, 0xc6))
    for (const part of blob.parts) this.#push(part)
  }

  #push(piece: Uint8Array): void {
    if (piece.length === 0) return
    this.#pieces.push(piece)
    this.#length += piece.length
  }
}

/** A msgpack array or bin header: the fix form below `fixBelow`, else 16 or 32 bits big-endian. */
const header = (length: number, fix: number, fixBelow: number, code16: number, code32: number): Uint8Array => {
  if (length < fixBelow) return new Uint8Array([fix | length])
  if (length < 0x10000) return new Uint8Array([code16, length >>> 8, length & 0xff])
  const out = new Uint8Array(5)
  out[0] = code32
  new DataView(out.buffer).setUint32(1, length)
  return out
}
