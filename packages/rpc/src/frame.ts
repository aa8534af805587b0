import { timingSafeEqual } from "node:crypto"
import type { DropReason } from "./stats.ts"

/**
 * Datagram framing, below the msgpack envelope:
 *
 *   whole:    [version u8][kind=0 u8][body ...][mac 32 bytes, when a cluster key is set]
 *   fragment: [version u8][kind=1 u8][msgId u32][index u16][count u16][body ...][mac]
 *   batch:    [version u8][kind=2 u8]([length u32][body ...])+[mac]   (several small messages to one peer)
 *
 * The header is fixed binary rather than msgpack so a datagram can be rejected (wrong version,
 * bad MAC, impossible fragment) before any decoding work is spent on it.
 */
export const WIRE_VERSION = 1
export const MAX_DATAGRAM_BYTES = 60 * 1024
export const DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
export const MAC_BYTES = 32

export const KIND_WHOLE = 0
export const KIND_FRAGMENT = 1
export const KIND_BATCH = 2
export const WHOLE_HEADER_BYTES = 2
export const FRAGMENT_HEADER_BYTES = 10
/** Each message in a batch is preceded by its length. */
export const BATCH_ITEM_HEADER_BYTES = 4

export type DecodedFrame =
  | { readonly kind: "whole"; readonly body: Uint8Array }
  | {
      readonly kind: "fragment"
      readonly msgId: number
      readonly index: number
      readonly count: number
      readonly body: Uint8Array
    }

export interface BatchFrame {
  readonly kind: "batch"
  readonly bodies: readonly Uint8Array[]
}

export interface FrameCodecOptions {
  /** Cluster key: when set, every datagram carries an HMAC-SHA256 and unauthenticated ones are dropped. */
  readonly key?: Uint8Array | string | undefined
  readonly maxDatagramBytes?: number
  readonly maxMessageBytes?: number
}

export class FrameCodec {
  readonly maxDatagramBytes: number
  readonly maxMessageBytes: number
  private readonly key: Uint8Array | string | undefined
  private readonly macBytes: number
  private readonly fragmentBodyBytes: number

  constructor(options: FrameCodecOptions = {}) {
    this.key = options.key
    this.macBytes = options.key === undefined ? 0 : MAC_BYTES
    this.maxDatagramBytes = options.maxDatagramBytes ?? MAX_DATAGRAM_BYTES
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
    this.fragmentBodyBytes = this.maxDatagramBytes - FRAGMENT_HEADER_BYTES - this.macBytes
    if (this.fragmentBodyBytes < 64) throw new Error("maxDatagramBytes is too small for framing")
  }

  /** Largest message body that fits one datagram without fragmentation. */
  get maxWholeBodyBytes(): number {
    return this.maxDatagramBytes - WHOLE_HEADER_BYTES - this.macBytes
  }

  /** Splits a message into datagrams; undefined when the message is larger than maxMessageBytes. */
  encode(message: Uint8Array, msgId: number): Uint8Array[] | undefined {
    if (message.length > this.maxMessageBytes) return undefined
    if (message.length <= this.maxWholeBodyBytes) {
      const out = new Uint8Array(WHOLE_HEADER_BYTES + message.length + this.macBytes)
      out[0] = WIRE_VERSION
      out[1] = KIND_WHOLE
      out.set(message, WHOLE_HEADER_BYTES)
      this.seal(out)
      return [out]
    }
    const count = Math.ceil(message.length / this.fragmentBodyBytes)
    if (count > 0xffff) return undefined
    const datagrams: Uint8Array[] = new Array(count)
    for (let index = 0; index < count; index++) {
      const start = index * this.fragmentBodyBytes
      const body = message.subarray(start, Math.min(message.length, start + this.fragmentBodyBytes))
      const out = new Uint8Array(FRAGMENT_HEADER_BYTES + body.length + this.macBytes)
      const view = new DataView(out.buffer)
      out[0] = WIRE_VERSION
      out[1] = KIND_FRAGMENT
      view.setUint32(2, msgId >>> 0)
      view.setUint16(6, index)
      view.setUint16(8, count)
      out.set(body, FRAGMENT_HEADER_BYTES)
      this.seal(out)
      datagrams[index] = out
    }
    return datagrams
  }

  /**
   * Packs several messages for one peer into one datagram (one send, one receive, one MAC). The
   * caller keeps the sum of `BATCH_ITEM_HEADER_BYTES + length` within maxWholeBodyBytes.
   */
  encodeBatch(messages: readonly Uint8Array[]): Uint8Array {
    let bytes = WHOLE_HEADER_BYTES + this.macBytes
    for (const m of messages) bytes += BATCH_ITEM_HEADER_BYTES + m.length
    const out = new Uint8Array(bytes)
    const view = new DataView(out.buffer)
    out[0] = WIRE_VERSION
    out[1] = KIND_BATCH
    let offset = WHOLE_HEADER_BYTES
    for (const m of messages) {
      view.setUint32(offset, m.length)
      out.set(m, offset + BATCH_ITEM_HEADER_BYTES)
      offset += BATCH_ITEM_HEADER_BYTES + m.length
    }
    this.seal(out)
    return out
  }

  /** A whole message or a fragment; a batch datagram counts as malformed here (see decodeAny). */
  decode(datagram: Uint8Array): DecodedFrame | DropReason {
    const frame = this.decodeAny(datagram)
    return typeof frame !== "string" && frame.kind === "batch" ? "malformed" : frame
  }

  decodeAny(datagram: Uint8Array): DecodedFrame | BatchFrame | DropReason {
    if (datagram.length > this.maxDatagramBytes) return "oversized"
    if (datagram.length < WHOLE_HEADER_BYTES + this.macBytes) return "malformed"
    if (this.key !== undefined && !this.verify(datagram)) return "unauthenticated"
    if (datagram[0] !== WIRE_VERSION) return "malformed"
    const end = datagram.length - this.macBytes
    const kind = datagram[1]
    if (kind === KIND_WHOLE) return { kind: "whole", body: datagram.subarray(WHOLE_HEADER_BYTES, end) }
    const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength)
    if (kind === KIND_BATCH) return decodeBatch(datagram, view, end)
    if (kind !== KIND_FRAGMENT || end < FRAGMENT_HEADER_BYTES) return "malformed"

    const msgId = view.getUint32(2)
    const index = view.getUint16(6)
    const count = view.getUint16(8)
    if (count < 2 || index >= count) return "malformed"
    if (count * this.fragmentBodyBytes > this.maxMessageBytes + this.fragmentBodyBytes) return "oversized"
    return { kind: "fragment", msgId, index, count, body: datagram.subarray(FRAGMENT_HEADER_BYTES, end) }
  }

  private seal(out: Uint8Array): void {
    if (this.key === undefined) return
    const end = out.length - MAC_BYTES
    out.set(this.mac(out.subarray(0, end)), end)
  }

  private verify(datagram: Uint8Array): boolean {
    const end = datagram.length - MAC_BYTES
    const expected = this.mac(datagram.subarray(0, end))
    return timingSafeEqual(expected, datagram.subarray(end))
  }

  private mac(data: Uint8Array): Uint8Array {
    const hasher = new Bun.CryptoHasher("sha256", this.key)
    hasher.update(data)
    return hasher.digest() as Uint8Array
  }
}

/** Every length must land exactly on the end: a truncated or padded batch is dropped whole. */
const decodeBatch = (datagram: Uint8Array, view: DataView, end: number): BatchFrame | DropReason => {
  const bodies: Uint8Array[] = []
  let offset = WHOLE_HEADER_BYTES
  while (offset < end) {
    if (offset + BATCH_ITEM_HEADER_BYTES > end) return "malformed"
    const length = view.getUint32(offset)
    const start = offset + BATCH_ITEM_HEADER_BYTES
    if (start + length > end) return "malformed"
    bodies.push(datagram.subarray(start, start + length))
    offset = start + length
  }
  if (bodies.length === 0) return "malformed"
  return { kind: "batch", bodies }
}
