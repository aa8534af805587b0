/**
 * Recovery of the shared write-ahead log: reads every segment once and splits it per replica, with
 * the per-replica WAL's rules for each one (walReplay.ts): a later entry replaces the stored ones
 * from its index on, the last hard state wins, a compaction marker restarts the log. A replica's
 * state starts at its newest checkpoint frame (sharedWalFrame.ts), so records before it, in segments
 * that may already be partly removed, are never needed.
 *
 * Torn tail. One flush makes the frames of several batches durable at once, so a crash (power loss)
 * can persist a later frame of the last flushes and not an earlier one. In the last segment, the
 * log is cut at the first frame that is short or fails its checksum when what follows it is zeros,
 * nothing valid, or valid frames whose flush generation is at most two above the last good frame's:
 * every frame after a frame that never became durable was written before any flush that could have
 * acknowledged it completed, so none was acknowledged. A valid frame of a later generation means a
 * flush after the bad frame completed, so the bad frame was durable: that is corruption. So is any
 * bad frame in an earlier segment (segments are cut to their data and synced when rotated out), and
 * a frame whose checksum matches but whose contents are not ours.
 */
import { join } from "node:path"
import { Decoder } from "@msgpack/msgpack"
import { segmentFileName } from "./dataDir.ts"
import { StorageCorrupt } from "./errors.ts"
import { replayedEntryProblem } from "./logRules.ts"
import { mapFile } from "./mappedFile.ts"
import { readSharedFrame, SHARED_FRAME_MAGIC, type SharedFrame } from "./sharedWalFrame.ts"
import { type Entry, type HardState, initialHardState } from "./types.ts"
import { WalIndex } from "./walIndex.ts"
import { RecordKind } from "./walRecord.ts"

export interface ReplayedReplica {
  readonly index: WalIndex
  /** The entries `index` describes, copied out of the segments. */
  readonly entries: Entry[]
  readonly hardState: HardState
  /** Frame size of the hard state record in force; undefined if the replica never wrote one. */
  readonly hardStateBytes: number | undefined
  /** Segment of the replica's newest checkpoint: nothing the replica needs lies before it. */
  readonly anchor: number
}

export interface ReplayedSharedWal {
  /** Every replica `isLive` accepted that has records in the log. */
  readonly replicas: Map<string, ReplayedReplica>
  /** Ascending and contiguous. */
  readonly segments: number[]
  /** Bytes of the last segment that hold whole frames; anything after them is a torn tail. */
  readonly lastSegmentValidBytes: number
  readonly lastSegmentFileBytes: number
  /** Above every generation in the log, torn tail included, so new frames keep the order. */
  readonly nextGeneration: number
}

interface FrameAt {
  readonly frame: SharedFrame
  readonly segment: number
  readonly path: string
}

/**
 * Replays `segments` of the log in `dir`. Records of a replica `isLive` rejects (its directory was
 * removed to rebuild it) are skipped. Throws StorageCorrupt on damage a crash cannot explain.
 */
export const replaySharedWal = (
  dir: string,
  segments: readonly number[],
  isLive: (name: string) => boolean,
): ReplayedSharedWal => {
  for (let k = 1; k < segments.length; k++) {
    const previous = segments[k - 1] as number
    if (segments[k] !== previous + 1) {
      throw new StorageCorrupt({
        path: join(dir, segmentFileName(previous + 1)),
        offset: 0,
        reason: `shared WAL segment ${previous + 1} is missing (found ${previous} and ${segments[k]})`,
      })
    }
  }
  const decoder = new Decoder()
  const frames: FrameAt[] = []
  const newestCheckpoint = new Map<string, number>()
  let lastGoodGeneration: number | undefined
  let maxGeneration = -1
  let lastSegmentValidBytes = 0
  let lastSegmentFileBytes = 0
  for (const [position, segment] of segments.entries()) {
    const isLast = position === segments.length - 1
    const path = join(dir, segmentFileName(segment))
    const bytes = mapFile(path)
    let offset = 0
    while (offset < bytes.length) {
      const read = readSharedFrame(bytes, offset, decoder)
      if (!read.ok) {
        const where = isLast
          ? "not explained by a torn final flush"
          : "in an earlier segment, which a crash cannot tear"
        if (!isLast || read.problem === "undecodable") {
          throw new StorageCorrupt({ path, offset, reason: `${read.reason}; ${where}` })
        }
        const after = generationsAfter(bytes, offset, decoder)
        const floor = lastGoodGeneration ?? Math.min(...after)
        const proof = after.find((generation) => generation > floor + 2)
        if (proof !== undefined) {
          throw new StorageCorrupt({
            path,
            offset,
            reason: `${read.reason}, but a frame of flush generation ${proof} follows it (the last good one is ${floor}); ${where}`,
          })
        }
        for (const generation of after) maxGeneration = Math.max(maxGeneration, generation)
        break
      }
      const { frame } = read
      lastGoodGeneration = frame.generation
      maxGeneration = Math.max(maxGeneration, frame.generation)
      if (isLive(frame.name)) {
        if (frame.checkpoint) newestCheckpoint.set(frame.name, frames.length)
        frames.push({ frame, segment, path })
      }
      offset = frame.end
    }
    if (isLast) {
      lastSegmentValidBytes = offset
      lastSegmentFileBytes = bytes.length
    }
  }

  const states = new Map<string, ReplicaReplay>()
  for (const [k, { frame, segment, path }] of frames.entries()) {
    const from = newestCheckpoint.get(frame.name)
    if (from === undefined) {
      throw new StorageCorrupt({
        path,
        offset: frame.records[0]?.offset ?? 0,
        reason: `replica ${frame.name} has records but no checkpoint in the shared WAL (a segment it needed is gone)`,
      })
    }
    if (k < from) continue
    let state = states.get(frame.name)
    if (state === undefined) {
      state = new ReplicaReplay(segment)
      states.set(frame.name, state)
    }
    state.apply(frame, segment, path)
  }
  const replicas = new Map<string, ReplayedReplica>()
  for (const [name, state] of states) replicas.set(name, state.result())
  return {
    replicas,
    segments: [...segments],
    lastSegmentValidBytes,
    lastSegmentFileBytes,
    nextGeneration: maxGeneration + 3,
  }
}

class ReplicaReplay {
  private readonly index = new WalIndex()
  private entries: Entry[] = []
  private hardState: HardState = initialHardState
  private hardStateBytes: number | undefined

  constructor(private readonly anchor: number) {}

  apply(frame: SharedFrame, segment: number, path: string): void {
    for (const { record, offset, size } of frame.records) {
      const corrupt = (reason: string) => new StorageCorrupt({ path, offset, reason: `${frame.name}: ${reason}` })
      switch (record.kind) {
        case RecordKind.HardState:
          this.hardState = record.hardState
          this.hardStateBytes = size
          break
        case RecordKind.Compacted:
          this.index.restart(record.index, record.term)
          this.entries = []
          break
        case RecordKind.Entry: {
          const index = this.index
          const problem = replayedEntryProblem(index, record)
          if (problem !== undefined) throw corrupt(problem)
          index.append(record.index, record.term, { segment, offset, size })
          this.entries.length = record.index - index.base - 1
          this.entries.push(
            record.config === undefined
              ? { term: record.term, index: record.index, data: record.data }
              : { term: record.term, index: record.index, data: record.data, config: record.config },
          )
          break
        }
      }
    }
  }

  result(): ReplayedReplica {
    // Copies detach the entries from the mapped segments, which may be truncated or removed later.
    const entries = this.entries.map((entry) =>
      entry.config === undefined
        ? { term: entry.term, index: entry.index, data: entry.data.slice() }
        : { term: entry.term, index: entry.index, data: entry.data.slice(), config: entry.config },
    )
    return {
      index: this.index,
      entries,
      hardState: this.hardState,
      hardStateBytes: this.hardStateBytes,
      anchor: this.anchor,
    }
  }
}

const allZero = (bytes: Uint8Array, from: number): boolean => {
  for (let k = from; k < bytes.length; k++) if (bytes[k] !== 0) return false
  return true
}

/** Generations of the valid frames that start after `offset` (none when only zeros follow). */
const generationsAfter = (bytes: Uint8Array, offset: number, decoder: Decoder): number[] => {
  if (allZero(bytes, offset)) return []
  const found: number[] = []
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
  for (let at = offset + 1; at + 4 <= bytes.length; at++) {
    if (view.getUint32(at, true) !== SHARED_FRAME_MAGIC) continue
    const read = readSharedFrame(bytes, at, decoder)
    if (read.ok) found.push(read.frame.generation)
  }
  return found
}
