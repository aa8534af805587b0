/**
 * In-memory storage with the file storage's semantics, for tests and simulation. The MemoryDisk
 * outlives storage instances: a test "crashes" a server by dropping its storage and "restarts" it by
 * opening the same disk. Every save/saveSnapshot call is a sync point, so the disk always holds
 * exactly what a file storage would have made durable. A `write` reaches the disk only when its
 * effect runs, after the optional flush delay: a server that crashes before then loses it whole.
 */
import { Effect } from "effect"
import { checkAppend, checkHardState, checkSnapshot, keepsLogAfter, type LogBounds } from "./logRules.ts"
import {
  type Entry,
  type HardState,
  initialHardState,
  type PersistedState,
  type RaftStorage,
  type Snapshot,
} from "./types.ts"
import { entryFrameBytes, hardStateFrameBytes } from "./walRecord.ts"

/** Durable state of one simulated server. Only storages opened on it change it. */
export class MemoryDisk {
  hardState: HardState = initialHardState
  snapshot: Snapshot | undefined = undefined
  /** Contiguous, after the snapshot. */
  entries: Entry[] = []
  /** Sum of the entries' WAL frame sizes, as the file storage would count them. */
  entryBytes = 0
  /** Bumped by every open; a storage opened earlier (a crashed server's) can no longer write. */
  generation = 0
}

const copyEntry = (entry: Entry): Entry =>
  entry.config === undefined
    ? { term: entry.term, index: entry.index, data: entry.data.slice() }
    : { term: entry.term, index: entry.index, data: entry.data.slice(), config: entry.config }

const copySnapshot = (snapshot: Snapshot): Snapshot =>
  snapshot.membership === undefined
    ? { index: snapshot.index, term: snapshot.term, data: snapshot.data.slice() }
    : { index: snapshot.index, term: snapshot.term, data: snapshot.data.slice(), membership: snapshot.membership }

export interface MemoryStorageOptions {
  /**
   * Runs before each `write` becomes durable: the simulated disk's flush time (an `Effect.sleep`
   * runs in virtual time under a simulated clock). Default: none, the write is durable at once.
   */
  readonly flushDelay?: Effect.Effect<void>
}

export const openMemoryStorage = (disk: MemoryDisk, options: MemoryStorageOptions = {}): RaftStorage => {
  disk.generation += 1
  const generation = disk.generation
  let closed = false
  /** A write that is waiting for its flush: nothing else may change the disk before it lands. */
  let flushing = false

  const log: LogBounds = {
    get base() {
      return disk.snapshot?.index ?? 0
    },
    get lastIndex() {
      return (disk.snapshot?.index ?? 0) + disk.entries.length
    },
    termAt(index) {
      const base = disk.snapshot?.index ?? 0
      if (index === base) return disk.snapshot?.term ?? 0
      return disk.entries[index - base - 1]?.term
    },
  }

  const truncateFrom = (index: number): void => {
    const keep = Math.max(0, index - log.base - 1)
    for (let k = keep; k < disk.entries.length; k++) disk.entryBytes -= entryFrameBytes(disk.entries[k] as Entry)
    disk.entries.length = Math.min(disk.entries.length, keep)
  }

  const ensureUsable = (): void => {
    if (closed) throw new Error("memory storage is closed")
    if (disk.generation !== generation) throw new Error("memory disk was reopened by a newer storage")
    if (flushing) throw new Error("memory storage: called before the previous write was durable")
  }

  const append = (hardState: HardState | undefined, entries: readonly Entry[]): void => {
    const first = entries[0]
    if (first !== undefined) truncateFrom(first.index)
    for (const entry of entries) {
      disk.entries.push(copyEntry(entry))
      disk.entryBytes += entryFrameBytes(entry)
    }
    if (hardState !== undefined) {
      disk.hardState = { term: hardState.term, vote: hardState.vote, commit: hardState.commit }
    }
  }

  return {
    load(): PersistedState {
      ensureUsable()
      const snapshot = disk.snapshot
      return {
        hardState: disk.hardState,
        snapshot: snapshot === undefined ? undefined : copySnapshot(snapshot),
        entries: disk.entries.map(copyEntry),
      }
    },

    save(hardState, entries) {
      ensureUsable()
      checkAppend(log, entries)
      if (hardState !== undefined) checkHardState(hardState)
      append(hardState, entries)
    },

    write(hardState, entries) {
      ensureUsable()
      checkAppend(log, entries)
      if (hardState !== undefined) checkHardState(hardState)
      if (options.flushDelay === undefined) {
        append(hardState, entries)
        return Effect.void
      }
      // Copied now: the caller may reuse what it handed over while the flush runs.
      const batch = entries.map(copyEntry)
      flushing = true
      return Effect.andThen(
        options.flushDelay,
        Effect.suspend(() => {
          flushing = false
          // Crashed meanwhile (closed, or the disk reopened by a restart): the write never landed
          // and nobody is left to learn of it.
          if (closed || disk.generation !== generation) return Effect.never
          append(hardState, batch)
          return Effect.void
        }),
      )
    },

    saveSnapshot(snapshot) {
      ensureUsable()
      checkSnapshot(snapshot)
      if (snapshot.index <= log.base) return
      if (keepsLogAfter(log, snapshot)) {
        const dropped = snapshot.index - log.base
        for (let k = 0; k < dropped; k++) disk.entryBytes -= entryFrameBytes(disk.entries[k] as Entry)
        disk.entries = disk.entries.slice(dropped)
      } else {
        truncateFrom(log.base + 1)
      }
      disk.snapshot = copySnapshot(snapshot)
    },

    raftStateBytes() {
      return hardStateFrameBytes(disk.hardState) + disk.entryBytes
    },

    snapshotBytes() {
      return disk.snapshot?.data.length ?? 0
    },

    close() {
      closed = true
    },
  }
}
