/**
 * WAL record framing: `[u32 body length][u32 crc32 of body][body]`, little-endian, body = msgpack
 * array. Record kinds:
 *   entry      [t, term, index, data]
 *   hard state [t, term, vote, commit]
 *   compacted  [t, index, term]   first record of a segment written by compaction: the log restarts
 *                                 after (index, term), everything replayed before it is dropped
 *   config     [t, term, index, membership]   a configuration entry (its data is always empty);
 *                                 `membership` is the bytes of membershipRecord.ts. WALs written
 *                                 before membership changes hold no such record and replay as before
 * `t` is the kind, plus BATCH_END on the last record of each save(): records after the last
 * BATCH_END of the last segment belong to a save that never completed and are discarded, which makes
 * every save() atomic across crashes.
 */
import { type Decoder, Encoder } from "@msgpack/msgpack"
import type { Membership } from "../core/types.ts"
import { decodeMembership, encodeMembership } from "./membershipRecord.ts"
import type { Entry, HardState } from "./types.ts"

export const RecordKind = { Entry: 1, HardState: 2, Compacted: 3, Config: 4 } as const
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind]

export const BATCH_END = 0x10
export const FRAME_HEADER_BYTES = 8
/**
 * Upper bound on a record body. A length field above it cannot come from a write of ours, so it is
 * reported as damage rather than taken for a torn tail.
 */
export const MAX_RECORD_BODY_BYTES = 64 * 1024 * 1024

export type WalRecord =
  | {
      readonly kind: typeof RecordKind.Entry
      readonly batchEnd: boolean
      readonly term: number
      readonly index: number
      readonly data: Uint8Array
      /** Decoded from a config record (which replays as an entry with empty data). */
      readonly config?: Membership
    }
  | { readonly kind: typeof RecordKind.HardState; readonly batchEnd: boolean; readonly hardState: HardState }
  | {
      readonly kind: typeof RecordKind.Compacted
      readonly batchEnd: boolean
      readonly index: number
      readonly term: number
    }

export type FrameRead =
  | { readonly ok: true; readonly record: WalRecord; readonly end: number }
  | { readonly ok: false; readonly problem: FrameProblem; readonly reason: string }

/**
 * short-header / short-body: the frame runs past the end of the file; bad-length: the length field
 * is 0 or above MAX_RECORD_BODY_BYTES; crc: body does not match its checksum; undecodable: the
 * checksum matches but the body is not a record we write.
 */
export type FrameProblem = "short-header" | "short-body" | "bad-length" | "crc" | "undecodable"

/** Reads the frame at `offset`; `bytes.length` is taken as the end of the file. */
export const readFrame = (bytes: Uint8Array, offset: number, decoder: Decoder): FrameRead => {
  const remaining = bytes.length - offset
  if (remaining < FRAME_HEADER_BYTES) {
    return { ok: false, problem: "short-header", reason: `${remaining} bytes left, a record header needs 8` }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, FRAME_HEADER_BYTES)
  const length = view.getUint32(0, true)
  const crc = view.getUint32(4, true)
  if (length === 0 || length > MAX_RECORD_BODY_BYTES) {
    return { ok: false, problem: "bad-length", reason: `record length ${length} is impossible` }
  }
  const bodyStart = offset + FRAME_HEADER_BYTES
  const end = bodyStart + length
  if (end > bytes.length) {
    return {
      ok: false,
      problem: "short-body",
      reason: `record of ${length} bytes runs ${end - bytes.length} bytes past the end of the file`,
    }
  }
  const body = bytes.subarray(bodyStart, end)
  const actual = Bun.hash.crc32(body)
  if (actual !== crc) {
    return { ok: false, problem: "crc", reason: `checksum mismatch (stored ${crc}, computed ${actual})` }
  }
  const record = decodeBody(body, decoder)
  if (record === undefined) {
    return { ok: false, problem: "undecodable", reason: "checksum matches but the body is not a WAL record" }
  }
  return { ok: true, record, end }
}

const EMPTY_DATA = new Uint8Array(0)

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0

const decodeBody = (body: Uint8Array, decoder: Decoder): WalRecord | undefined => {
  let value: unknown
  try {
    value = decoder.decode(body)
  } catch {
    return undefined
  }
  if (!Array.isArray(value) || !isCount(value[0])) return undefined
  const t = value[0]
  const batchEnd = (t & BATCH_END) !== 0
  const kind = t & ~BATCH_END
  switch (kind) {
    case RecordKind.Entry: {
      const [, term, index, data] = value
      if (value.length !== 4 || !isCount(term) || !isCount(index) || index === 0 || !(data instanceof Uint8Array)) {
        return undefined
      }
      return { kind, batchEnd, term, index, data }
    }
    case RecordKind.Config: {
      const [, term, index, bytes] = value
      if (value.length !== 4 || !isCount(term) || !isCount(index) || index === 0 || !(bytes instanceof Uint8Array)) {
        return undefined
      }
      const config = decodeMembership(bytes)
      if (config === undefined) return undefined
      return { kind: RecordKind.Entry, batchEnd, term, index, data: EMPTY_DATA, config }
    }
    case RecordKind.HardState: {
      const [, term, vote, commit] = value
      if (value.length !== 4 || !isCount(term) || !isCount(vote) || !isCount(commit)) return undefined
      return { kind, batchEnd, hardState: { term, vote, commit } }
    }
    case RecordKind.Compacted: {
      const [, index, term] = value
      if (value.length !== 3 || !isCount(index) || !isCount(term)) return undefined
      return { kind, batchEnd, index, term }
    }
    default:
      return undefined
  }
}

/**
 * The body length that the first bytes of a record body declare: its msgpack array header, kind,
 * integer fields and, for an entry, the bin header that gives its data length. Undefined when
 * `prefix` ends before that is known or does not start like a record we write. Recovery compares it
 * with a torn frame's length field: when they agree, the length is the writer's, not damage.
 */
export const declaredBodyBytes = (prefix: Uint8Array): number | undefined => {
  const arrayHeader = prefix[0]
  const t = prefix[1]
  if (t === undefined || (arrayHeader !== 0x93 && arrayHeader !== 0x94)) return undefined
  const kind = t & ~BATCH_END
  // Integers after the kind: entry term and index (then its data), hard state term, vote and
  // commit, compaction index and term.
  const integers = kind === RecordKind.HardState ? 3 : 2
  if (t >= 0x80 || !isRecordKind(kind) || arrayHeader !== (kind === RecordKind.Compacted ? 0x93 : 0x94))
    return undefined
  let at = 2
  for (let k = 0; k < integers; k++) {
    const size = uintSizeAt(prefix, at)
    if (size === undefined) return undefined
    at += size
  }
  if (kind !== RecordKind.Entry && kind !== RecordKind.Config) return at
  const binHeader = prefix[at]
  const lengthBytes = binHeader === 0xc4 ? 1 : binHeader === 0xc5 ? 2 : binHeader === 0xc6 ? 4 : undefined
  if (lengthBytes === undefined || at + 1 + lengthBytes > prefix.length) return undefined
  let dataLength = 0
  for (let k = 0; k < lengthBytes; k++) dataLength = dataLength * 256 + (prefix[at + 1 + k] as number)
  return at + 1 + lengthBytes + dataLength
}

export const isRecordKind = (kind: number): boolean =>
  kind === RecordKind.Entry ||
  kind === RecordKind.HardState ||
  kind === RecordKind.Compacted ||
  kind === RecordKind.Config

/** Encoded size of the msgpack unsigned integer at `at`, if it is one and fits in `bytes`. */
const uintSizeAt = (bytes: Uint8Array, at: number): number | undefined => {
  const first = bytes[at]
  if (first === undefined) return undefined
  const size = first < 0x80 ? 1 : first === 0xcc ? 2 : first === 0xcd ? 3 : first === 0xce ? 5 : first === 0xcf ? 9 : 0
  return size === 0 || at + size > bytes.length ? undefined : size
}

/** Builds the frames of one write in a reused buffer. */
export class FrameBatch {
  private bytes = new Uint8Array(4096)
  private view = new DataView(this.bytes.buffer)
  private readonly encoder = new Encoder()
  length = 0

  reset(): void {
    this.length = 0
  }

  contents(): Uint8Array {
    return this.bytes.subarray(0, this.length)
  }

  /** Returns the frame's size; it starts at the `length` read before the call. */
  addEntry(entry: Entry, batchEnd: boolean): number {
    if (entry.config !== undefined) {
      return this.addBody(
        this.encoder.encodeSharedRef([
          RecordKind.Config | flag(batchEnd),
          entry.term,
          entry.index,
          encodeMembership(entry.config),
        ]),
      )
    }
    return this.addBody(
      this.encoder.encodeSharedRef([RecordKind.Entry | flag(batchEnd), entry.term, entry.index, entry.data]),
    )
  }

  addHardState(hardState: HardState, batchEnd: boolean): number {
    return this.addBody(
      this.encoder.encodeSharedRef([
        RecordKind.HardState | flag(batchEnd),
        hardState.term,
        hardState.vote,
        hardState.commit,
      ]),
    )
  }

  addCompacted(index: number, term: number): number {
    return this.addBody(this.encoder.encodeSharedRef([RecordKind.Compacted, index, term]))
  }

  /** Reserves `size` bytes for frames copied verbatim from another segment; returns where they go. */
  reserve(size: number): Uint8Array {
    this.ensure(size)
    const target = this.bytes.subarray(this.length, this.length + size)
    this.length += size
    return target
  }

  private addBody(body: Uint8Array): number {
    if (body.length > MAX_RECORD_BODY_BYTES) {
      throw new RangeError(`WAL record of ${body.length} bytes exceeds ${MAX_RECORD_BODY_BYTES}`)
    }
    const size = FRAME_HEADER_BYTES + body.length
    this.ensure(size)
    this.view.setUint32(this.length, body.length, true)
    this.view.setUint32(this.length + 4, Bun.hash.crc32(body), true)
    this.bytes.set(body, this.length + FRAME_HEADER_BYTES)
    this.length += size
    return size
  }

  private ensure(extra: number): void {
    const needed = this.length + extra
    if (needed <= this.bytes.length) return
    let capacity = this.bytes.length * 2
    while (capacity < needed) capacity *= 2
    const grown = new Uint8Array(capacity)
    grown.set(this.bytes.subarray(0, this.length))
    this.bytes = grown
    this.view = new DataView(grown.buffer)
  }
}

const flag = (batchEnd: boolean): number => (batchEnd ? BATCH_END : 0)

// Sizes of encoded frames, computed without encoding; the memory storage uses them so that both
// storages report the same raftStateBytes.

const uintBytes = (n: number): number => (n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9)

const binBytes = (length: number): number => (length < 0x100 ? 2 : length < 0x10000 ? 3 : 5) + length

export const entryFrameBytes = (entry: Entry): number =>
  FRAME_HEADER_BYTES +
  2 +
  uintBytes(entry.term) +
  uintBytes(entry.index) +
  binBytes(entry.config === undefined ? entry.data.length : encodeMembership(entry.config).length)

export const hardStateFrameBytes = (hardState: HardState): number =>
  FRAME_HEADER_BYTES + 2 + uintBytes(hardState.term) + uintBytes(hardState.vote) + uintBytes(hardState.commit)
