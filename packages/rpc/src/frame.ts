import { createCipheriv, createDecipheriv } from "node:crypto"
import { type KeyGrant, KeyRing, type RingKey, type Role } from "./keyRing.ts"
import type { DropReason } from "./stats.ts"

/**
 * Datagram framing, below the msgpack envelope. A plain frame:
 *
 *   whole:    [version=1 u8][kind=0 u8][body ...]
 *   fragment: [version=1 u8][kind=1 u8][msgId u32][index u16][count u16][body ...]
 *   batch:    [version=1 u8][kind=2 u8]([length u32][body ...])+   (several small messages to one peer)
 *
 * With keys, every datagram is a plain frame encrypted and authenticated with AES-256-GCM:
 *
 *   sealed:   [version=2 u8][keyId u32][nonce 12 bytes][plain frame, encrypted][tag 16 bytes]
 *
 * The version, key id and nonce are authenticated too (additional data). Nothing of the message,
 * not even its kind or fragment numbers, is readable on the wire. The header is fixed binary
 * rather than msgpack so a datagram can be rejected (wrong version, unknown key, failed tag,
 * impossible fragment) before any decoding work is spent on it.
 */
export const WIRE_VERSION = 1
export const SEALED_VERSION = 2
export const MAX_DATAGRAM_BYTES = 60 * 1024
export const DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
const KEY_ID_BYTES = 4
const NONCE_BYTES = 12
const TAG_BYTES = 16
const SEALED_HEADER_BYTES = 1 + KEY_ID_BYTES + NONCE_BYTES
/** What sealing adds to a plain frame: header and tag. */
export const SEAL_BYTES = SEALED_HEADER_BYTES + TAG_BYTES

export const KIND_WHOLE = 0
export const KIND_FRAGMENT = 1
export const KIND_BATCH = 2
export const WHOLE_HEADER_BYTES = 2
export const FRAGMENT_HEADER_BYTES = 10
/** Each message in a batch is preceded by its length. */
export const BATCH_ITEM_HEADER_BYTES = 4

/** Who sealed a datagram: its key's id (0 without keys) and the role that key grants. */
export interface Sender {
  readonly keyId: number
  readonly role: Role
}

/** Every datagram of a node without keys: authentication is off, so nothing is refused by role. */
export const UNKEYED: Sender = { keyId: 0, role: "server" }

export type DecodedFrame =
  | { readonly kind: "whole"; readonly body: Uint8Array; readonly sender: Sender }
  | {
      readonly kind: "fragment"
      readonly msgId: number
      readonly index: number
      readonly count: number
      readonly body: Uint8Array
      readonly sender: Sender
    }

export interface BatchFrame {
  readonly kind: "batch"
  readonly bodies: readonly Uint8Array[]
  readonly sender: Sender
}

export interface FrameCodecOptions {
  /**
   * Cluster key: every datagram is encrypted and authenticated under it and any other is dropped.
   * Shorthand for `keys: [{ secret: key, role: "server" }]`.
   */
  readonly key?: Uint8Array | string | undefined
  /**
   * Keys accepted, each with the role it grants; the first is the one this node seals with.
   * Takes precedence over `key`. Empty or undefined (and no `key`): datagrams are plain.
   */
  readonly keys?: readonly KeyGrant[] | undefined
  readonly maxDatagramBytes?: number
  readonly maxMessageBytes?: number
}

/**
 * Nonces never repeat under one key: each codec (one per transport, so one per process start)
 * draws 64 random bits from the OS's cryptographic generator and counts 32 bits after them; when
 * the counter wraps it draws a new 64-bit prefix. A nonce could repeat only if two prefixes ever
 * drawn with the same key were equal: with P prefixes drawn over the key's life the chance is
 * about P²/2^65 (a million process starts: below 3·10⁻⁸). Nothing is kept on disk, and a
 * restarted process starts from a fresh prefix, not from a counter it might have used already.
 */
export class NonceSource {
  private readonly nonce = new Uint8Array(NONCE_BYTES)
  private readonly view = new DataView(this.nonce.buffer)
  private counter = 0

  constructor() {
    this.refresh()
  }

  /** The next nonce, valid until the next call (callers copy it into the datagram at once). */
  next(): Uint8Array {
    if (this.counter === 0x1_0000_0000) this.refresh()
    this.view.setUint32(8, this.counter)
    this.counter++
    return this.nonce
  }

  private refresh(): void {
    crypto.getRandomValues(this.nonce.subarray(0, 8))
    this.counter = 0
  }
}

export class FrameCodec {
  readonly maxDatagramBytes: number
  readonly maxMessageBytes: number
  /** Undefined: datagrams are plain frames. */
  readonly keys: KeyRing | undefined
  private readonly sealBytes: number
  private readonly fragmentBodyBytes: number
  private readonly nonces: NonceSource | undefined
  /** Plain frames are built here before they are sealed, so a sealed datagram costs no extra buffer. */
  private scratch = new Uint8Array(0)

  constructor(options: FrameCodecOptions = {}) {
    const grants =
      options.keys !== undefined && options.keys.length > 0
        ? options.keys
        : options.key === undefined
          ? []
          : [{ secret: options.key, role: "server" as const }]
    this.keys = grants.length > 0 ? new KeyRing(grants) : undefined
    this.nonces = this.keys === undefined ? undefined : new NonceSource()
    this.sealBytes = this.keys === undefined ? 0 : SEAL_BYTES
    this.maxDatagramBytes = options.maxDatagramBytes ?? MAX_DATAGRAM_BYTES
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
    this.fragmentBodyBytes = this.maxDatagramBytes - FRAGMENT_HEADER_BYTES - this.sealBytes
    if (this.fragmentBodyBytes < 64) throw new Error("maxDatagramBytes is too small for framing")
  }

  /** Largest message body that fits one datagram without fragmentation. */
  get maxWholeBodyBytes(): number {
    return this.maxDatagramBytes - WHOLE_HEADER_BYTES - this.sealBytes
  }

  /** The id of the key `keyId` resolves to (see keyFor); 0 without keys. */
  sealingKeyId(keyId: number | undefined): number {
    return this.keyFor(keyId)?.keyId ?? 0
  }

  /** The key a datagram is sealed with: the node's own unless a reply names its request's key. */
  private keyFor(keyId: number | undefined): RingKey | undefined {
    const keys = this.keys
    if (keys === undefined) return undefined
    return (keyId === undefined ? undefined : keys.get(keyId)) ?? keys.sending
  }

  /**
   * Splits a message into datagrams; undefined when the message is larger than maxMessageBytes.
   * `keyId` picks the key to seal with (a reply goes back under its request's key).
   */
  encode(message: Uint8Array, msgId: number, keyId?: number): Uint8Array[] | undefined {
    if (message.length > this.maxMessageBytes) return undefined
    const key = this.keyFor(keyId)
    if (message.length <= this.maxWholeBodyBytes) {
      const out = this.frameBuffer(WHOLE_HEADER_BYTES + message.length)
      out[0] = WIRE_VERSION
      out[1] = KIND_WHOLE
      out.set(message, WHOLE_HEADER_BYTES)
      return [this.seal(out, key)]
    }
    const count = Math.ceil(message.length / this.fragmentBodyBytes)
    if (count > 0xffff) return undefined
    const datagrams: Uint8Array[] = new Array(count)
    for (let index = 0; index < count; index++) {
      const start = index * this.fragmentBodyBytes
      const body = message.subarray(start, Math.min(message.length, start + this.fragmentBodyBytes))
      const out = this.frameBuffer(FRAGMENT_HEADER_BYTES + body.length)
      const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
      out[0] = WIRE_VERSION
      out[1] = KIND_FRAGMENT
      view.setUint32(2, msgId >>> 0)
      view.setUint16(6, index)
      view.setUint16(8, count)
      out.set(body, FRAGMENT_HEADER_BYTES)
      datagrams[index] = this.seal(out, key)
    }
    return datagrams
  }

  /**
   * Packs several messages for one peer into one datagram (one send, one receive, one seal). The
   * caller keeps the sum of `BATCH_ITEM_HEADER_BYTES + length` within maxWholeBodyBytes.
   */
  encodeBatch(messages: readonly Uint8Array[], keyId?: number): Uint8Array {
    let bytes = WHOLE_HEADER_BYTES
    for (const m of messages) bytes += BATCH_ITEM_HEADER_BYTES + m.length
    const out = this.frameBuffer(bytes)
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
    out[0] = WIRE_VERSION
    out[1] = KIND_BATCH
    let offset = WHOLE_HEADER_BYTES
    for (const m of messages) {
      view.setUint32(offset, m.length)
      out.set(m, offset + BATCH_ITEM_HEADER_BYTES)
      offset += BATCH_ITEM_HEADER_BYTES + m.length
    }
    return this.seal(out, this.keyFor(keyId))
  }

  /** A whole message or a fragment; a batch datagram counts as malformed here (see decodeAny). */
  decode(datagram: Uint8Array): DecodedFrame | DropReason {
    const frame = this.decodeAny(datagram)
    return typeof frame !== "string" && frame.kind === "batch" ? "malformed" : frame
  }

  decodeAny(datagram: Uint8Array): DecodedFrame | BatchFrame | DropReason {
    if (datagram.length > this.maxDatagramBytes) return "oversized"
    if (this.keys === undefined) {
      // A sealed datagram at a node without keys: someone else's cluster, or a node not yet given the key.
      if (datagram[0] === SEALED_VERSION) return "unauthenticated"
      return this.decodePlain(datagram, UNKEYED)
    }
    if (datagram.length === 0) return "malformed"
    if (datagram[0] !== SEALED_VERSION) return "unauthenticated"
    if (datagram.length < SEAL_BYTES + WHOLE_HEADER_BYTES) return "malformed"
    const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength)
    const key = this.keys.get(view.getUint32(1))
    if (key === undefined) return "unauthenticated"
    const plain = open(datagram, key)
    if (plain === undefined) return "unauthenticated"
    return this.decodePlain(plain, key)
  }

  private decodePlain(frame: Uint8Array, sender: Sender): DecodedFrame | BatchFrame | DropReason {
    if (frame.length < WHOLE_HEADER_BYTES) return "malformed"
    if (frame[0] !== WIRE_VERSION) return "malformed"
    const end = frame.length
    const kind = frame[1]
    if (kind === KIND_WHOLE) return { kind: "whole", body: frame.subarray(WHOLE_HEADER_BYTES, end), sender }
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
    if (kind === KIND_BATCH) return decodeBatch(frame, view, end, sender)
    if (kind !== KIND_FRAGMENT || end < FRAGMENT_HEADER_BYTES) return "malformed"

    const msgId = view.getUint32(2)
    const index = view.getUint16(6)
    const count = view.getUint16(8)
    if (count < 2 || index >= count) return "malformed"
    if (count * this.fragmentBodyBytes > this.maxMessageBytes + this.fragmentBodyBytes) return "oversized"
    return { kind: "fragment", msgId, index, count, body: frame.subarray(FRAGMENT_HEADER_BYTES, end), sender }
  }

  /** Where a plain frame is built: its own datagram without keys, a reused buffer with them. */
  private frameBuffer(bytes: number): Uint8Array {
    if (this.keys === undefined) return new Uint8Array(bytes)
    if (this.scratch.length < bytes) this.scratch = new Uint8Array(Math.max(bytes, 2 * this.scratch.length))
    return this.scratch.subarray(0, bytes)
  }

  private seal(plain: Uint8Array, key: RingKey | undefined): Uint8Array {
    if (key === undefined || this.nonces === undefined) return plain
    const out = new Uint8Array(SEALED_HEADER_BYTES + plain.length + TAG_BYTES)
    out[0] = SEALED_VERSION
    new DataView(out.buffer).setUint32(1, key.keyId)
    out.set(this.nonces.next(), 1 + KEY_ID_BYTES)
    const header = out.subarray(0, SEALED_HEADER_BYTES)
    const cipher = createCipheriv("aes-256-gcm", key.aeadKey, header.subarray(1 + KEY_ID_BYTES))
    cipher.setAAD(header)
    const encrypted = cipher.update(plain)
    cipher.final()
    out.set(encrypted, SEALED_HEADER_BYTES)
    out.set(cipher.getAuthTag(), SEALED_HEADER_BYTES + plain.length)
    return out
  }
}

/** The plain frame inside a sealed datagram, or undefined when the tag does not verify. */
const open = (datagram: Uint8Array, key: RingKey): Uint8Array | undefined => {
  const header = datagram.subarray(0, SEALED_HEADER_BYTES)
  const tagAt = datagram.length - TAG_BYTES
  try {
    const decipher = createDecipheriv("aes-256-gcm", key.aeadKey, header.subarray(1 + KEY_ID_BYTES))
    decipher.setAAD(header)
    decipher.setAuthTag(datagram.subarray(tagAt))
    const plain = decipher.update(datagram.subarray(SEALED_HEADER_BYTES, tagAt))
    // Throws when the tag does not match: nothing decrypted is used before this.
    decipher.final()
    return plain
  } catch {
    return undefined
  }
}

/** Every length must land exactly on the end: a truncated or padded batch is dropped whole. */
const decodeBatch = (frame: Uint8Array, view: DataView, end: number, sender: Sender): BatchFrame | DropReason => {
  const bodies: Uint8Array[] = []
  let offset = WHOLE_HEADER_BYTES
  while (offset < end) {
    if (offset + BATCH_ITEM_HEADER_BYTES > end) return "malformed"
    const length = view.getUint32(offset)
    const start = offset + BATCH_ITEM_HEADER_BYTES
    if (start + length > end) return "malformed"
    bodies.push(frame.subarray(start, start + length))
    offset = start + length
  }
  if (bodies.length === 0) return "malformed"
  return { kind: "batch", bodies, sender }
}
