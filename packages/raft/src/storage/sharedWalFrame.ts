/**
 * Frames of the shared write-ahead log (sharedWal.ts): one frame holds one replica's batch, so a
 * batch is atomic across crashes exactly as a save() of the per-replica WAL is.
 *
 *   0  u32 magic "KSWL"          4  u32 payload length P
 *   8  u32 crc32 of bytes 12..20+P (the generation and the payload)
 *   12 f64 flush generation: how many flushes of the log had started when the frame was written
 *   20 payload: u8 flags, u8 name length N, N bytes of the replica's name (UTF-8), then the batch as
 *      frames of walRecord.ts (the per-replica WAL's records, the last one flagged BATCH_END)
 *
 * Flag CHECKPOINT marks a frame whose first record is a compaction marker: the replica's log
 * restarts there, so replay of that replica begins at its newest checkpoint and nothing before it
 * matters (which is what lets old segments go).
 */
import type { Decoder } from "@msgpack/msgpack"
import { RecordKind, readFrame, type WalRecord } from "./walRecord.ts"

export const SHARED_FRAME_MAGIC = 0x4c57534b
export const SHARED_FRAME_HEADER_BYTES = 20
export const SharedFrameFlag = { Checkpoint: 1 } as const
/** Above this a payload length cannot come from a write of ours. */
export const MAX_SHARED_PAYLOAD_BYTES = 1024 * 1024 * 1024
const MAX_NAME_BYTES = 255

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder("utf-8", { fatal: true })

export const encodeReplicaName = (name: string): Uint8Array => {
  const bytes = utf8.encode(name)
  if (bytes.length === 0 || bytes.length > MAX_NAME_BYTES) {
    throw new RangeError(`replica name ${JSON.stringify(name)} must be 1..${MAX_NAME_BYTES} bytes`)
  }
  return bytes
}

/** Bytes before the batch's first record inside a frame of this name. */
export const batchOffsetInFrame = (nameBytes: Uint8Array): number => SHARED_FRAME_HEADER_BYTES + 2 + nameBytes.length

/** Writes the frame around `batch` into `target` (which holds exactly the frame's bytes). */
export const encodeSharedFrame = (
  target: Uint8Array,
  nameBytes: Uint8Array,
  flags: number,
  generation: number,
  batch: Uint8Array,
): void => {
  const payloadBytes = 2 + nameBytes.length + batch.length
  if (payloadBytes > MAX_SHARED_PAYLOAD_BYTES) {
    throw new RangeError(`shared WAL frame of ${payloadBytes} bytes exceeds ${MAX_SHARED_PAYLOAD_BYTES}`)
  }
  const view = new DataView(target.buffer, target.byteOffset, SHARED_FRAME_HEADER_BYTES)
  view.setUint32(0, SHARED_FRAME_MAGIC, true)
  view.setUint32(4, payloadBytes, true)
  view.setFloat64(12, generation, true)
  target[SHARED_FRAME_HEADER_BYTES] = flags
  target[SHARED_FRAME_HEADER_BYTES + 1] = nameBytes.length
  target.set(nameBytes, SHARED_FRAME_HEADER_BYTES + 2)
  target.set(batch, batchOffsetInFrame(nameBytes))
  view.setUint32(8, Bun.hash.crc32(target.subarray(12, SHARED_FRAME_HEADER_BYTES + payloadBytes)), true)
}

export interface SharedFrame {
  readonly name: string
  readonly checkpoint: boolean
  readonly generation: number
  /** The batch's records, each with its offset in the file and its size (for the index). */
  readonly records: readonly { readonly record: WalRecord; readonly offset: number; readonly size: number }[]
  /** Offset just after the frame. */
  readonly end: number
}

/**
 * torn: the frame runs past the end of the file, or its checksum fails (what a crash can leave);
 * bad: the bytes are not a frame (wrong magic, impossible length); undecodable: the checksum
 * matches but the contents are not ours.
 */
export type SharedFrameRead =
  | { readonly ok: true; readonly frame: SharedFrame }
  | { readonly ok: false; readonly problem: "torn" | "bad" | "undecodable"; readonly reason: string }

/** Reads the frame at `offset`; `bytes.length` is taken as the end of the file. */
export const readSharedFrame = (bytes: Uint8Array, offset: number, decoder: Decoder): SharedFrameRead => {
  const remaining = bytes.length - offset
  if (remaining < SHARED_FRAME_HEADER_BYTES) {
    return { ok: false, problem: "torn", reason: `${remaining} bytes left, a frame header needs 20` }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, SHARED_FRAME_HEADER_BYTES)
  if (view.getUint32(0, true) !== SHARED_FRAME_MAGIC) return { ok: false, problem: "bad", reason: "no frame magic" }
  const payloadBytes = view.getUint32(4, true)
  if (payloadBytes < 2 || payloadBytes > MAX_SHARED_PAYLOAD_BYTES) {
    return { ok: false, problem: "bad", reason: `frame payload length ${payloadBytes} is impossible` }
  }
  const end = offset + SHARED_FRAME_HEADER_BYTES + payloadBytes
  if (end > bytes.length) {
    return { ok: false, problem: "torn", reason: `frame runs ${end - bytes.length} bytes past the end of the file` }
  }
  const crc = Bun.hash.crc32(bytes.subarray(offset + 12, end))
  if (crc !== view.getUint32(8, true)) return { ok: false, problem: "torn", reason: "frame checksum mismatch" }
  const undecodable = (reason: string): SharedFrameRead => ({ ok: false, problem: "undecodable", reason })
  const flags = bytes[offset + SHARED_FRAME_HEADER_BYTES] as number
  const nameLength = bytes[offset + SHARED_FRAME_HEADER_BYTES + 1] as number
  const nameStart = offset + SHARED_FRAME_HEADER_BYTES + 2
  if (nameLength === 0 || nameStart + nameLength > end) return undecodable("frame has no replica name")
  let name: string
  try {
    name = fromUtf8.decode(bytes.subarray(nameStart, nameStart + nameLength))
  } catch {
    return undecodable("replica name is not UTF-8")
  }
  // The batch is read against the frame's end, so a record cannot reach into the next frame.
  const frameBytes = bytes.subarray(0, end)
  const records: { record: WalRecord; offset: number; size: number }[] = []
  let at = nameStart + nameLength
  while (at < end) {
    const read = readFrame(frameBytes, at, decoder)
    if (!read.ok) return undecodable(`record at byte ${at}: ${read.reason}`)
    records.push({ record: read.record, offset: at, size: read.end - at })
    at = read.end
  }
  if (records.length === 0 || !(records.at(-1) as { record: WalRecord }).record.batchEnd) {
    return undecodable("frame's batch does not end with BATCH_END")
  }
  const checkpoint = (flags & SharedFrameFlag.Checkpoint) !== 0
  if (checkpoint && records[0]?.record.kind !== RecordKind.Compacted)
    return undecodable("checkpoint frame does not start with a marker")
  return { ok: true, frame: { name, checkpoint, generation: view.getFloat64(12, true), records, end } }
}
