/**
 * Rules shared by the file and memory storages, so both accept and reject exactly the same calls.
 * A call that breaks them is a bug in the caller (a defect), reported with a RangeError.
 */
import type { Entry, HardState, Snapshot } from "./types.ts"
import { entryFrameBytes, FRAME_HEADER_BYTES, MAX_RECORD_BODY_BYTES } from "./walRecord.ts"

/** What the rules need to know about the stored log. */
export interface LogBounds {
  /** Index of the snapshot the log follows (0 without one). */
  readonly base: number
  readonly lastIndex: number
  /** Term of the entry at `index`; the snapshot's term at `base`; undefined outside [base, lastIndex]. */
  termAt(index: number): number | undefined
}

const isCount = (n: number): boolean => Number.isSafeInteger(n) && n >= 0

export const checkHardState = (hardState: HardState): void => {
  if (!isCount(hardState.term) || !isCount(hardState.vote) || !isCount(hardState.commit)) {
    throw new RangeError(`invalid hard state ${JSON.stringify(hardState)}`)
  }
}

/**
 * Entries must be contiguous, start inside or right after the stored log (never at or below the
 * snapshot), and keep terms non-decreasing along the log.
 */
export const checkAppend = (log: LogBounds, entries: readonly Entry[]): void => {
  const first = entries[0]
  if (first === undefined) return
  if (first.index <= log.base || first.index > log.lastIndex + 1) {
    throw new RangeError(`cannot append entry ${first.index}: stored log covers (${log.base}, ${log.lastIndex}]`)
  }
  let previousTerm = log.termAt(first.index - 1) ?? 0
  for (let k = 0; k < entries.length; k++) {
    const entry = entries[k] as Entry
    if (entry.index !== first.index + k) {
      throw new RangeError(`entries are not contiguous: ${entry.index} follows ${first.index + k - 1}`)
    }
    if (!Number.isSafeInteger(entry.term) || entry.term < 1 || entry.term < previousTerm) {
      throw new RangeError(`entry ${entry.index} has term ${entry.term} after term ${previousTerm}`)
    }
    if (!(entry.data instanceof Uint8Array)) throw new RangeError(`entry ${entry.index} has no data bytes`)
    if (entryFrameBytes(entry) - FRAME_HEADER_BYTES > MAX_RECORD_BODY_BYTES) {
      throw new RangeError(`entry ${entry.index} of ${entry.data.length} bytes is larger than a WAL record may be`)
    }
    previousTerm = entry.term
  }
}

export const checkSnapshot = (snapshot: Snapshot): void => {
  if (!isCount(snapshot.index) || !isCount(snapshot.term) || !(snapshot.data instanceof Uint8Array)) {
    throw new RangeError(`invalid snapshot (index ${snapshot.index}, term ${snapshot.term})`)
  }
}

/** Raft's rule for a new snapshot: the log after it survives only if the log agrees at its index. */
export const keepsLogAfter = (log: LogBounds, snapshot: { index: number; term: number }): boolean =>
  snapshot.index <= log.lastIndex && log.termAt(snapshot.index) === snapshot.term

/**
 * Why a replayed WAL entry record cannot follow the log replayed so far (at or below the compaction
 * point, a gap, a term of 0 or lower than the entry before), or undefined when it can. Both WAL
 * formats replay with these rules, so a log one refuses the other refuses too.
 */
export const replayedEntryProblem = (
  log: LogBounds,
  entry: { readonly index: number; readonly term: number },
): string | undefined => {
  if (entry.index <= log.base) return `entry ${entry.index} is at or below the compaction point ${log.base}`
  if (entry.index > log.lastIndex + 1) return `entry ${entry.index} leaves a gap after entry ${log.lastIndex}`
  const previousTerm = log.termAt(entry.index - 1) ?? 0
  if (entry.term < 1 || entry.term < previousTerm) {
    return `entry ${entry.index} has term ${entry.term} after term ${previousTerm}`
  }
  return undefined
}
