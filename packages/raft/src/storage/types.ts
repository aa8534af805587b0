/**
 * Records that Raft persists. The pure core declares structurally identical types, so values pass
 * between the two without conversion.
 */
import { Effect } from "effect"
import type { Membership } from "../core/types.ts"

export interface Entry {
  readonly term: number
  readonly index: number
  /** Empty for a leader's no-op entry and for configuration entries. */
  readonly data: Uint8Array
  /** A configuration entry's membership (a WAL record of its own kind; older WALs have none). */
  readonly config?: Membership
}

export interface HardState {
  readonly term: number
  /** The candidate voted for in `term`, 0 if none. */
  readonly vote: number
  readonly commit: number
}

export interface Snapshot {
  /** Last log index the snapshot covers. */
  readonly index: number
  /** Term of the entry at `index`. */
  readonly term: number
  readonly data: Uint8Array
  /** The membership at `index` (snapshot file format 2; absent in format 1 files). */
  readonly membership?: Membership
}

export interface PersistedState {
  hardState: HardState
  snapshot: Snapshot | undefined
  /** Contiguous, starting at `snapshot.index + 1` (or 1 without a snapshot). */
  entries: Entry[]
}

/** What the writer knows of a durable write's moment (raftNode.ts decides it). */
export interface WriteHint {
  /**
   * Nothing the caller holds is worth running while this write flushes: a follower's (or a
   * candidate's) answers wait for it, and so does a leader whose write is one client's put (one
   * entry after everything committed, no read pending: node/writeHint.ts).
   */
  readonly callerWaits: boolean
}

/**
 * Durable Raft state of one server. Synchronous because the shell calls it once per Ready on its
 * hot path: every mutating call but `write` returns only after its data is durable, and `write`
 * hands the wait for the disk back to the caller, so a replica keeps receiving while its disk works.
 */
export interface RaftStorage {
  /** What was durable when the storage was opened plus everything saved since. Throws `StorageCorrupt`. */
  load(): PersistedState
  /**
   * One durable write per Ready: appends `entries` (an entry at index i replaces every stored entry
   * >= i) and/or records `hardState`. The call is atomic across crashes: after a restart either all of
   * it or none of it is present.
   */
  save(hardState: HardState | undefined, entries: readonly Entry[]): void
  /**
   * The same write as `save`, made durable without holding the caller: when this returns the batch
   * is written but perhaps not yet durable, and the returned effect completes once it is (it dies if
   * the disk failed; the storage is then unusable, as after a failed `save`). When the caller says
   * it has nothing else to do meanwhile (`hint.callerWaits`), a storage may flush a small batch
   * before returning, where handing the flush to another thread costs more than it saves (the file
   * storage's `inlineFlush`), and then returns `Effect.void` itself (`durableOnReturn`): nothing is
   * left to wait for. Otherwise the caller runs the effect before any other mutating call. A crash
   * before it completes leaves all of the batch or none of it.
   */
  write(hardState: HardState | undefined, entries: readonly Entry[], hint?: WriteHint): Effect.Effect<void>
  /**
   * Makes `snapshot` durable, then drops log entries <= snapshot.index. Entries after it are kept only
   * if the stored log holds snapshot.index with snapshot.term; otherwise the whole log is discarded.
   * A snapshot not newer than the stored one is ignored.
   */
  saveSnapshot(snapshot: Snapshot): void
  /**
   * Optional: does the slow part of `saveSnapshot(snapshot)` (writing and syncing the file) without
   * holding the caller, changing nothing stored; a `saveSnapshot` of the same snapshot after it
   * resolves is then quick. If it fails, `saveSnapshot` does the whole work.
   */
  prepareSnapshot?(snapshot: Snapshot): Promise<void>
  /** Bytes of the hard state plus the entries after the snapshot, as stored. O(1). */
  raftStateBytes(): number
  /** Bytes of the stored snapshot's data, 0 without one. */
  snapshotBytes(): number
  close(): void
}

/** A `write` that flushed before returning: it gave back `Effect.void`, and nothing is left to wait for. */
export const durableOnReturn = (write: Effect.Effect<void>): boolean => write === Effect.void

export const initialHardState: HardState = { term: 0, vote: 0, commit: 0 }
