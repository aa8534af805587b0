/**
 * Recovery of the WAL: replays segments in order and decides, for every bad frame, whether a crash
 * can explain it (a torn tail of the last segment, dropped) or not (StorageCorrupt).
 *
 * A crash can leave only the last segment's final save incomplete: every save() is one write
 * followed by fdatasync, segments are rotated only between saves, and compaction segments are
 * renamed into place complete. So in the last segment these are torn tails:
 *   - valid records after the last BATCH_END (a save whose final record never made it);
 *   - a final frame cut short (header or body runs past the end of the file);
 *   - a final frame whose checksum fails at the very end of the file, or followed only by zero
 *     bytes (a file extended before its data reached the disk);
 *   - a run of zero bytes to the end of the file;
 * and only if no valid frame starts anywhere after the bad one, which tells a damaged length field
 * (a frame that seems to run past the end although more frames follow) from a torn one. That scan
 * is skipped when the bad frame's length agrees with the size its own body declares (msgpack header
 * and data length): the length is then the writer's, so a valid frame inside the span is bytes of
 * the record's value (a user may store WAL frames as a value), not a record behind damage. Everything
 * else is corruption: a bad frame with data after it, a bad frame in an earlier segment, a segment
 * that ends inside a save, a record that breaks the log's order, a missing segment.
 *
 * Known limit: if a crash persists a later page of the final save but not an earlier one (the disk
 * reorders writes within one unsynced save), the damage is not at the tail and is reported as
 * corruption, so the server refuses to start rather than guess.
 */

import { closeSync, openSync, readSync } from "node:fs"
import { join } from "node:path"
import { Decoder } from "@msgpack/msgpack"
import { segmentFileName } from "./dataDir.ts"
import { StorageCorrupt } from "./errors.ts"
import { replayedEntryProblem } from "./logRules.ts"
import { mapFile } from "./mappedFile.ts"
import { type Entry, type HardState, initialHardState } from "./types.ts"
import { WalIndex } from "./walIndex.ts"
import {
  BATCH_END,
  declaredBodyBytes,
  FRAME_HEADER_BYTES,
  type FrameRead,
  isRecordKind,
  RecordKind,
  readFrame,
  type WalRecord,
} from "./walRecord.ts"

export interface ReplayedWal {
  readonly hardState: HardState
  /** Frame size of the hard state record in force, as if written now when there is none. */
  readonly hardStateBytes: number | undefined
  readonly index: WalIndex
  /** The entries `index` describes, with their data. */
  readonly entries: Entry[]
  /** Segments that make up the state, ascending. */
  readonly segments: number[]
  /** Segments older than the newest compaction segment: they no longer matter and can be removed. */
  readonly staleSegments: number[]
  /** Bytes of the last segment that hold complete saves; anything after them is a torn tail. */
  readonly lastSegmentValidBytes: number
  readonly lastSegmentFileBytes: number
}

interface PendingRecord {
  readonly record: WalRecord
  readonly offset: number
  readonly size: number
}

export const replayWal = (dir: string, segments: readonly number[]): ReplayedWal => {
  const decoder = new Decoder()
  const startAt = newestCompactionSegment(dir, segments, decoder)
  const live = startAt === undefined ? [...segments] : segments.filter((seq) => seq >= startAt)
  const staleSegments = segments.filter((seq) => !live.includes(seq))
  for (let k = 1; k < live.length; k++) {
    const previous = live[k - 1] as number
    if (live[k] !== previous + 1) {
      throw new StorageCorrupt({
        path: join(dir, segmentFileName(previous + 1)),
        offset: 0,
        reason: `WAL segment ${previous + 1} is missing (found ${previous} and ${live[k]})`,
      })
    }
  }

  const index = new WalIndex()
  let entries: Entry[] = []
  let hardState = initialHardState
  let hardStateBytes: number | undefined
  let lastSegmentValidBytes = 0
  let lastSegmentFileBytes = 0

  for (const [position, segment] of live.entries()) {
    const isLast = position === live.length - 1
    const path = join(dir, segmentFileName(segment))
    // Mapped, not read, and the entries' data stay views of the mapping (see mappedFile.ts): copying
    // a restart's tail out faulted in fresh memory for every page of it, 60–90 ms of CPU for 16 MiB
    // on this project's machine, before the node could answer. Nothing cuts a segment below the end
    // of its last complete save (a torn tail or preallocated zeros go, never an entry kept here).
    const bytes = mapFile(path)
    let pending: PendingRecord[] = []
    let savesEnd = 0
    let offset = 0

    const apply = ({ record, offset, size }: PendingRecord): void => {
      const corrupt = (reason: string) => new StorageCorrupt({ path, offset, reason })
      switch (record.kind) {
        case RecordKind.HardState:
          hardState = record.hardState
          hardStateBytes = size
          return
        case RecordKind.Compacted:
          index.restart(record.index, record.term)
          entries = []
          return
        case RecordKind.Entry: {
          const problem = replayedEntryProblem(index, record)
          if (problem !== undefined) throw corrupt(problem)
          index.append(record.index, record.term, { segment, offset, size })
          entries.length = record.index - index.base - 1
          entries.push(
            record.config === undefined
              ? { term: record.term, index: record.index, data: record.data }
              : { term: record.term, index: record.index, data: record.data, config: record.config },
          )
          return
        }
      }
    }

    while (offset < bytes.length) {
      const frame = readFrame(bytes, offset, decoder)
      if (!frame.ok) {
        if (isLast && isTornTail(bytes, offset, frame, decoder)) break
        const where = isLast
          ? "not explained by a torn final write"
          : "in an earlier segment, which a crash cannot tear"
        throw new StorageCorrupt({ path, offset, reason: `${frame.reason}; ${where}` })
      }
      pending.push({ record: frame.record, offset, size: frame.end - offset })
      offset = frame.end
      if (frame.record.batchEnd) {
        for (const record of pending) apply(record)
        pending = []
        savesEnd = offset
      }
    }
    if (!isLast && (pending.length > 0 || savesEnd !== bytes.length)) {
      throw new StorageCorrupt({ path, offset: savesEnd, reason: "segment ends inside a save" })
    }
    if (isLast) {
      lastSegmentValidBytes = savesEnd
      lastSegmentFileBytes = bytes.length
    }
  }

  return {
    hardState,
    hardStateBytes,
    index,
    entries,
    segments: live,
    staleSegments,
    lastSegmentValidBytes,
    lastSegmentFileBytes,
  }
}

/** The newest segment whose first record is a compaction marker; replay starts there. */
const newestCompactionSegment = (dir: string, segments: readonly number[], decoder: Decoder): number | undefined => {
  for (let k = segments.length - 1; k >= 0; k--) {
    const segment = segments[k] as number
    const first = readFirstFrame(join(dir, segmentFileName(segment)), decoder)
    if (first?.ok && first.record.kind === RecordKind.Compacted) return segment
  }
  return undefined
}

const readFirstFrame = (path: string, decoder: Decoder): FrameRead | undefined => {
  const fd = openSync(path, "r")
  try {
    const header = new Uint8Array(FRAME_HEADER_BYTES)
    if (readSync(fd, header, 0, FRAME_HEADER_BYTES, 0) < FRAME_HEADER_BYTES) return undefined
    const length = new DataView(header.buffer).getUint32(0, true)
    // A compaction marker is a few dozen bytes; anything longer is some other record.
    if (length > 64) return undefined
    const frame = new Uint8Array(FRAME_HEADER_BYTES + length)
    const read = readSync(fd, frame, 0, frame.length, 0)
    return readFrame(frame.subarray(0, read), 0, decoder)
  } finally {
    closeSync(fd)
  }
}

const allZero = (bytes: Uint8Array, from: number): boolean => {
  for (let k = from; k < bytes.length; k++) if (bytes[k] !== 0) return false
  return true
}

const isTornTail = (bytes: Uint8Array, offset: number, frame: FrameRead & { ok: false }, decoder: Decoder): boolean => {
  switch (frame.problem) {
    case "short-header":
      return true
    case "bad-length":
      return allZero(bytes, offset)
    case "short-body":
      return lengthIsTheWriters(bytes, offset) || !frameStartsAfter(bytes, offset, decoder)
    case "crc": {
      const length = new DataView(bytes.buffer, bytes.byteOffset + offset, 4).getUint32(0, true)
      return (
        allZero(bytes, offset + FRAME_HEADER_BYTES + length) &&
        (lengthIsTheWriters(bytes, offset) || !frameStartsAfter(bytes, offset, decoder))
      )
    }
    case "undecodable":
      return false
  }
}

/**
 * Whether the length field of the bad frame at `offset` agrees with the size its own body declares
 * (see declaredBodyBytes). Then the frame's span is its own: a valid frame inside it is bytes of its
 * value (a user can store the bytes of a WAL frame), not a later record behind a damaged length, and
 * it must not turn a torn write into "corruption" that stops the replica from starting.
 */
const lengthIsTheWriters = (bytes: Uint8Array, offset: number): boolean => {
  const length = new DataView(bytes.buffer, bytes.byteOffset + offset, 4).getUint32(0, true)
  return declaredBodyBytes(bytes.subarray(offset + FRAME_HEADER_BYTES)) === length
}

/**
 * Whether a valid frame starts anywhere after `offset`. Cheap checks on the length field, the
 * msgpack array header and the record kind come first, so the checksum runs on few candidates.
 */
const frameStartsAfter = (bytes: Uint8Array, offset: number, decoder: Decoder): boolean => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
  for (let at = offset + 1; at + FRAME_HEADER_BYTES < bytes.length; at++) {
    const length = view.getUint32(at, true)
    if (length === 0 || length > bytes.length - at - FRAME_HEADER_BYTES) continue
    const arrayHeader = bytes[at + FRAME_HEADER_BYTES]
    if (arrayHeader !== 0x93 && arrayHeader !== 0x94) continue
    const kind = (bytes[at + FRAME_HEADER_BYTES + 1] as number) & ~BATCH_END
    if (!isRecordKind(kind)) continue
    if (readFrame(bytes, at, decoder).ok) return true
  }
  return false
}
