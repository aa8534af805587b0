/**
 * One write-ahead log for every replica a process runs on one data root (`<root>/shared-wal/`), as
 * multi-Raft stores do: replicas of different groups append their batches to the same segment and
 * share its flushes. Snapshots stay per replica (`<root>/<name>/snap-*.snap`, snapshotFile.ts).
 *
 * Group commit: at most one flush (fdatasync on the thread pool) runs at a time. A write appends its
 * frame at once and waits for the next flush to start after it; every write made while a flush runs
 * waits for the one after, which then covers them all. So a write's effect completes only after an
 * fdatasync that started after its bytes were written.
 *
 * Segments: once a write would grow the live segment past segmentBytes, the segment is cut to its
 * data and synced, the next one created, and every open replica whose log is small enough gets a
 * checkpoint frame there (compaction marker, its retained entries copied byte for byte, its hard
 * state), which makes that segment the oldest one it needs. Segments older than every replica's
 * newest checkpoint are removed. A replica that does not checkpoint (not opened in this process,
 * or holding a log larger than a quarter segment because it never snapshots) keeps its segments.
 *
 * A replica's directory holds the marker file MARKER_FILE while its log lives here. Without it the
 * replica's records are ignored (its directory was removed to rebuild it from its peers), and
 * opening it starts a fresh log with a checkpoint at index 0. A directory with a WAL of its own
 * belongs to the per-replica storage (fileStorage.ts) and is refused, and that storage refuses a
 * directory with the marker.
 *
 * Not guarded: two processes on one root (the caller holds a lock).
 */
import { closeSync, existsSync, fdatasyncSync, fsyncSync, ftruncateSync, openSync, rmSync, unlinkSync } from "node:fs"
import { join } from "node:path"
import { Decoder } from "@msgpack/msgpack"
import { Effect } from "effect"
import {
  DEFAULT_PREALLOCATE_BYTES,
  DEFAULT_SEGMENT_BYTES,
  fdatasyncOnPool,
  fsyncDir,
  listDataDir,
  makeDirDurably,
  readAllSync,
  segmentFileName,
  snapshotFileName,
  writeAllSync,
  writeFileAtomically,
  zeroBytes,
} from "./dataDir.ts"
import { StorageCorrupt } from "./errors.ts"
import { checkAppend, checkHardState, checkSnapshot, keepsLogAfter } from "./logRules.ts"
import { batchOffsetInFrame, encodeReplicaName, encodeSharedFrame, SharedFrameFlag } from "./sharedWalFrame.ts"
import { replaySharedWal } from "./sharedWalReplay.ts"
import { readSnapshotFile, writeSnapshotFile } from "./snapshotFile.ts"
import {
  type Entry,
  type HardState,
  initialHardState,
  type PersistedState,
  type RaftStorage,
  type Snapshot,
} from "./types.ts"
import { type FrameLocation, WalIndex } from "./walIndex.ts"
import { FrameBatch, hardStateFrameBytes, RecordKind, readFrame } from "./walRecord.ts"

/** The shared log's directory under the data root. */
export const SHARED_WAL_DIR = "shared-wal"
/** In a replica's directory: its log is in the shared WAL. */
export const MARKER_FILE = "in-shared-wal"

export interface SharedWalOptions {
  /** A segment is closed and the next started once a write would grow it past this. Default 64 MiB. */
  readonly segmentBytes?: number
  /** The live segment is extended with zeros this far ahead of its data (see FileStorageOptions). Default 4 MiB. */
  readonly preallocateBytes?: number
  /** Makes the live segment durable; default fdatasync on the runtime's thread pool. Tests hold it. */
  readonly flush?: (fd: number) => Promise<void>
  /** Told the duration of every flush of the log (for a metric: replicas' waits overlap on one flush). */
  readonly onFlush?: (seconds: number) => void
  /**
   * After a flush, how many turns of the event loop the next one may wait for the replicas that flush
   * released to write again (see `gather`). Default GATHER_TURNS; 0 starts it at once.
   */
  readonly gatherTurns?: number
}

/**
 * A replica released by a flush usually writes its next batch a few event-loop turns later (its
 * loop resumes, builds the next Ready and sends its appends first); measured on three groups per
 * process, a flush started at once covered 1.1 to 1.4 batches.
 */
export const GATHER_TURNS = 4

interface Round {
  readonly promise: Promise<void>
  readonly resolve: () => void
  readonly reject: (error: unknown) => void
  /** The replicas whose writes wait for this round's flush. */
  readonly writers: Set<string>
}

const makeRound = (): Round => {
  let resolve: () => void = () => {}
  let reject: (error: unknown) => void = () => {}
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  // A flush failure with no waiter left must not become an unhandled rejection.
  promise.catch(() => {})
  return { promise, resolve, reject, writers: new Set() }
}

/** What the log knows of one replica, whether or not it is open. */
interface ReplicaLog {
  readonly index: WalIndex
  hardState: HardState
  hardStateBytes: number
  /** Segment of the newest checkpoint: nothing the replica needs lies before it. */
  anchor: number
  /** The replayed entries, until the replica is opened. */
  entries: Entry[] | undefined
  storage: SharedReplicaStorage | undefined
}

export interface SharedWalStats {
  /** Flushes started. */
  readonly flushes: number
  /** Frames written (batches, resets and checkpoints). */
  readonly frames: number
  /** Live segments. */
  readonly segments: readonly number[]
}

export class SharedWal {
  private readonly dir: string
  private readonly segmentBytes: number
  private readonly preallocateBytes: number
  private readonly flushDisk: (fd: number) => Promise<void>
  private readonly onFlush: (seconds: number) => void
  private readonly replicas = new Map<string, ReplicaLog>()
  private readonly batch = new FrameBatch()
  /** Apart from `batch`: a rotation checkpoints while the batch that caused it waits to be written. */
  private readonly checkpointBatch = new FrameBatch()
  private frameBuffer = new Uint8Array(4096)
  private fd: number
  private segment: number
  private segments: number[]
  private segmentSize: number
  private allocated: number
  /** Flushes started since the log began (continued across restarts); written into every frame. */
  private generation: number
  private flushing = false
  private scheduled = false
  private readonly gatherTurns: number
  /** Replicas the last flush released that have not written since: the next flush waits a little for them. */
  private awaited = new Set<string>()
  /** The next flush waits for `awaited` (see `gather`): this turn of the event loop ends the wait. */
  private gatherTimer: ReturnType<typeof setImmediate> | undefined
  /** Writers waiting for the next flush. */
  private next: Round | undefined
  /** Descriptors of rotated-out segments (or of a closed log) the running flush still uses. */
  private retired: number[] = []
  private rotating = false
  private closed = false
  private failure: unknown
  private flushCount = 0
  private frameCount = 0

  /** Opens (creating if needed) the shared log under `root` and replays it. Throws StorageCorrupt. */
  static open(root: string, options: SharedWalOptions = {}): SharedWal {
    return new SharedWal(root, options)
  }

  private constructor(
    private readonly root: string,
    options: SharedWalOptions,
  ) {
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES
    if (!Number.isSafeInteger(this.segmentBytes) || this.segmentBytes <= 0) {
      throw new RangeError(`segmentBytes must be a positive integer, got ${this.segmentBytes}`)
    }
    this.preallocateBytes = Math.min(options.preallocateBytes ?? DEFAULT_PREALLOCATE_BYTES, this.segmentBytes)
    this.flushDisk = options.flush ?? fdatasyncOnPool
    this.onFlush = options.onFlush ?? (() => {})
    this.gatherTurns = options.gatherTurns ?? GATHER_TURNS
    this.dir = join(root, SHARED_WAL_DIR)
    makeDirDurably(this.dir)
    const listing = listDataDir(this.dir)
    const replayed = replaySharedWal(this.dir, listing.segments, (name) => existsSync(join(root, name, MARKER_FILE)))
    let changedDir = false
    for (const name of listing.temporaries) {
      unlinkSync(join(this.dir, name))
      changedDir = true
    }
    let current = replayed.segments.at(-1)
    if (current === undefined) {
      current = 1
      closeSync(openSync(join(this.dir, segmentFileName(current)), "wx"))
      changedDir = true
    }
    if (changedDir) fsyncDir(this.dir)
    this.fd = openSync(join(this.dir, segmentFileName(current)), "r+")
    this.segment = current
    this.segments = replayed.segments.length > 0 ? [...replayed.segments] : [current]
    this.segmentSize = replayed.lastSegmentValidBytes
    this.allocated = replayed.lastSegmentFileBytes
    this.generation = replayed.nextGeneration
    if (replayed.lastSegmentValidBytes < replayed.lastSegmentFileBytes) {
      // The torn tail and any zeros ahead of the data: the next write extends the file again.
      ftruncateSync(this.fd, replayed.lastSegmentValidBytes)
      fsyncSync(this.fd)
      this.allocated = replayed.lastSegmentValidBytes
    } else if (replayed.lastSegmentValidBytes > 0) {
      // A process killed with a flush pending left those frames in the page cache, where replay read
      // them: the replicas will act on them (ack, vote), so a machine crash must not take them back.
      fdatasyncSync(this.fd)
    }
    for (const [name, replica] of replayed.replicas) {
      this.replicas.set(name, {
        index: replica.index,
        hardState: replica.hardState,
        hardStateBytes: replica.hardStateBytes ?? hardStateFrameBytes(replica.hardState),
        anchor: replica.anchor,
        entries: replica.entries,
        storage: undefined,
      })
    }
  }

  stats(): SharedWalStats {
    return { flushes: this.flushCount, frames: this.frameCount, segments: [...this.segments] }
  }

  /**
   * The storage of replica `name` (its directory `<root>/<name>`), recovered from the log and its
   * newest snapshot. Throws StorageCorrupt on damage, or if the directory holds a WAL of its own.
   */
  openReplica(name: string): RaftStorage {
    this.ensureUsable()
    const nameBytes = encodeReplicaName(name)
    const existing = this.replicas.get(name)
    if (existing?.storage !== undefined) throw new Error(`replica ${name} is already open on the shared WAL`)
    const dir = join(this.root, name)
    makeDirDurably(dir)
    const listing = listDataDir(dir)
    if (listing.segments.length > 0) {
      throw new StorageCorrupt({
        path: join(dir, segmentFileName(listing.segments[0] as number)),
        offset: 0,
        reason:
          "this replica keeps a write-ahead log of its own (per-replica storage); start it without the shared WAL",
      })
    }
    let log = existing
    if (!existsSync(join(dir, MARKER_FILE))) {
      if (listing.snapshots.length > 0) {
        throw new StorageCorrupt({
          path: join(dir, snapshotFileName(listing.snapshots[0] as number)),
          offset: 0,
          reason: `snapshots without ${MARKER_FILE} or a write-ahead log: their log is lost`,
        })
      }
      // Anything the log still holds under this name belonged to a replica since removed.
      log = {
        index: new WalIndex(),
        hardState: initialHardState,
        hardStateBytes: hardStateFrameBytes(initialHardState),
        anchor: this.segment,
        entries: [],
        storage: undefined,
      }
      this.replicas.set(name, log)
      this.checkpoint(nameBytes, log)
      this.syncNow()
      writeFileAtomically(dir, MARKER_FILE, [
        new TextEncoder().encode(`The Raft log of this replica is in ../${SHARED_WAL_DIR} (shared write-ahead log).\n`),
      ])
    } else if (log === undefined) {
      throw new StorageCorrupt({
        path: join(dir, MARKER_FILE),
        offset: 0,
        reason: `the replica's log should be in ${this.dir}, which holds no record of it`,
      })
    }
    let changedDir = false
    for (const temporary of listing.temporaries) {
      unlinkSync(join(dir, temporary))
      changedDir = true
    }
    const newest = listing.snapshots.at(-1)
    const snapshot = newest === undefined ? undefined : readSnapshotFile(dir, newest)
    checkBaseAgainstSnapshot(dir, log.index, snapshot)
    for (const index of listing.snapshots) {
      if (index !== newest) {
        unlinkSync(join(dir, snapshotFileName(index)))
        changedDir = true
      }
    }
    if (changedDir) fsyncDir(dir)
    let entries = log.entries ?? this.readEntries(log.index)
    log.entries = undefined
    if (snapshot !== undefined && log.index.base < snapshot.index) {
      const keep = keepsLogAfter(log.index, snapshot)
      entries = keep ? entries.filter((entry) => entry.index > snapshot.index) : []
      restartIndexAt(log.index, snapshot)
    }
    const storage = new SharedReplicaStorage(this, name, nameBytes, dir, log, snapshot, {
      hardState: log.hardState,
      snapshot,
      entries,
    })
    log.storage = storage
    return storage
  }

  /** Closes the log; storages still open can no longer write. A running flush keeps its descriptor. */
  close(): void {
    if (this.closed) return
    this.closed = true
    if (this.gatherTimer !== undefined) clearImmediate(this.gatherTimer)
    this.gatherTimer = undefined
    for (const log of this.replicas.values()) log.storage = undefined
    // Writers waiting for a flush that will not start now get a synchronous one.
    const pending = this.next
    this.next = undefined
    if (pending !== undefined) {
      try {
        fdatasyncSync(this.fd)
        pending.resolve()
      } catch (error) {
        pending.reject(error)
      }
    }
    if (this.flushing) this.retired.push(this.fd)
    else closeSync(this.fd)
  }

  /** @internal Writes one replica's batch as a frame; returns where the batch starts. */
  writeFrame(nameBytes: Uint8Array, flags: number, batch: Uint8Array): { segment: number; batchStart: number } {
    this.ensureUsable()
    const size = batchOffsetInFrame(nameBytes) + batch.length
    try {
      if (!this.rotating && this.segmentSize > 0 && this.segmentSize + size > this.segmentBytes) this.rotate()
      if (this.frameBuffer.length < size) {
        let capacity = this.frameBuffer.length * 2
        while (capacity < size) capacity *= 2
        this.frameBuffer = new Uint8Array(capacity)
      }
      const frame = this.frameBuffer.subarray(0, size)
      encodeSharedFrame(frame, nameBytes, flags, this.generation, batch)
      writeAllSync(this.fd, frame, this.segmentSize)
      const end = this.segmentSize + size
      if (end > this.allocated) {
        // Zeros are what replay reads as the end of the log, so the space ahead needs no marker.
        const target = Math.max(end, Math.min(this.segmentBytes, end + this.preallocateBytes))
        if (target > end) writeAllSync(this.fd, zeroBytes(target - end), end)
        this.allocated = target
      }
    } catch (error) {
      this.failure = error
      throw error
    }
    const batchStart = this.segmentSize + batchOffsetInFrame(nameBytes)
    this.segmentSize += size
    this.frameCount++
    return { segment: this.segment, batchStart }
  }

  /** @internal Waits for a flush that starts after every write made so far (`writer`'s among them). */
  durable(writer: string): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    let round = this.next
    if (round === undefined) {
      round = makeRound()
      this.next = round
    }
    round.writers.add(writer)
    if (this.gatherTimer !== undefined) {
      // Every replica the last flush released has written again: writes of this turn join, then it starts.
      if (this.awaited.delete(writer) && this.awaited.size === 0) queueMicrotask(this.endGather)
      return round.promise
    }
    if (!this.flushing && !this.scheduled) {
      // Writes made in the same turn of the event loop join this flush.
      this.scheduled = true
      queueMicrotask(() => {
        this.scheduled = false
        this.startFlush()
      })
    }
    return round.promise
  }

  /** @internal Makes every write so far durable before returning (for `save`). */
  syncNow(): void {
    // A flush of its own: frames written after it must not pass for frames it made durable.
    this.generation++
    this.flushCount++
    const started = performance.now()
    try {
      fdatasyncSync(this.fd)
    } catch (error) {
      this.failure = error
      throw error
    }
    this.onFlush((performance.now() - started) / 1000)
  }

  /** @internal */
  batchBuilder(): FrameBatch {
    return this.batch
  }

  /** @internal */
  ensureUsable(): void {
    if (this.closed) throw new Error(`shared WAL ${this.dir} is closed`)
    if (this.failure !== undefined) {
      throw new Error(`shared WAL ${this.dir} stopped after a failed write; reopen it to recover`, {
        cause: this.failure,
      })
    }
  }

  /** @internal The entries the index points at, read back from the segments. */
  readEntries(index: WalIndex): Entry[] {
    const decoder = new Decoder()
    const entries: Entry[] = []
    const fds = new Map<number, number>()
    try {
      for (let i = index.base + 1; i <= index.lastIndex; i++) {
        const at = index.locate(i)
        let fd = fds.get(at.segment)
        if (fd === undefined) {
          fd = openSync(join(this.dir, segmentFileName(at.segment)), "r")
          fds.set(at.segment, fd)
        }
        const bytes = new Uint8Array(at.size)
        readAllSync(fd, bytes, at.offset, "shared WAL segment")
        const read = readFrame(bytes, 0, decoder)
        if (!read.ok || read.record.kind !== RecordKind.Entry) {
          throw new Error(
            `entry ${i} is not where the shared WAL's index says (segment ${at.segment}, byte ${at.offset})`,
          )
        }
        const r = read.record
        entries.push(
          r.config === undefined
            ? { term: r.term, index: r.index, data: r.data }
            : { term: r.term, index: r.index, data: r.data, config: r.config },
        )
      }
    } finally {
      for (const fd of fds.values()) closeSync(fd)
    }
    return entries
  }

  /** @internal The replica closed: its log stays, and still counts for segment removal. */
  release(log: ReplicaLog): void {
    log.storage = undefined
  }

  private startFlush(): void {
    const round = this.next
    if (this.flushing || round === undefined || this.closed) return
    this.next = undefined
    this.flushing = true
    this.generation++
    this.flushCount++
    const started = performance.now()
    this.flushDisk(this.fd).then(
      () => {
        this.onFlush((performance.now() - started) / 1000)
        this.flushing = false
        this.closeRetired()
        round.resolve()
        if (this.next !== undefined && !this.closed) this.gather(round.writers)
      },
      (error: unknown) => {
        this.flushing = false
        this.failure = error
        this.closeRetired()
        round.reject(error)
        this.next?.reject(error)
        this.next = undefined
      },
    )
  }

  /**
   * Starts the next flush once every replica `released` has written again, or after gatherTurns
   * turns of the event loop. Started at once, it covered only the writes made during the last flush
   * (mostly one replica's), and the released replicas' next batches, written a few turns later,
   * waited for the flush after it: as many flushes as batches, and each batch waiting for two.
   */
  private gather(released: ReadonlySet<string>): void {
    const next = this.next
    this.awaited.clear()
    if (next !== undefined) for (const name of released) if (!next.writers.has(name)) this.awaited.add(name)
    if (this.awaited.size === 0 || this.gatherTurns <= 0) {
      this.startFlush()
      return
    }
    let left = this.gatherTurns
    const turn = () => {
      if (--left > 0) this.gatherTimer = setImmediate(turn)
      else this.endGather()
    }
    this.gatherTimer = setImmediate(turn)
  }

  private readonly endGather = (): void => {
    if (this.gatherTimer === undefined) return
    clearImmediate(this.gatherTimer)
    this.gatherTimer = undefined
    this.awaited.clear()
    this.startFlush()
  }

  private closeRetired(): void {
    for (const fd of this.retired) closeSync(fd)
    this.retired = []
  }

  /**
   * Starts the next segment, checkpoints the open replicas into it and removes the segments no
   * replica needs any more. Synchronous, once per segmentBytes.
   */
  private rotate(): void {
    // Only the live segment may end in zeros: replay holds earlier ones to end exactly after a frame.
    if (this.allocated > this.segmentSize) ftruncateSync(this.fd, this.segmentSize)
    this.generation++
    fsyncSync(this.fd)
    const next = this.segment + 1
    const fd = openSync(join(this.dir, segmentFileName(next)), "wx+")
    fsyncDir(this.dir)
    if (this.flushing) this.retired.push(this.fd)
    else closeSync(this.fd)
    this.fd = fd
    this.segment = next
    this.segments.push(next)
    this.segmentSize = 0
    this.allocated = 0
    this.rotating = true
    try {
      for (const log of this.replicas.values()) {
        if (log.storage === undefined || log.index.entryBytes > this.segmentBytes / 4) continue
        this.checkpoint(log.storage.nameBytes, log)
      }
    } finally {
      this.rotating = false
    }
    this.generation++
    fdatasyncSync(this.fd)
    let needed = this.segment
    for (const log of this.replicas.values()) needed = Math.min(needed, log.anchor)
    const removable = this.segments.filter((segment) => segment < needed)
    // Oldest first: a crash midway leaves a contiguous run, and replay skips what precedes checkpoints.
    for (const segment of removable) unlinkSync(join(this.dir, segmentFileName(segment)))
    this.segments = this.segments.filter((segment) => segment >= needed)
  }

  /** Writes a checkpoint of `log` (marker, retained entries verbatim, hard state) and points the index at it. */
  private checkpoint(nameBytes: Uint8Array, log: ReplicaLog): void {
    const index = log.index
    const retained: { index: number; term: number; from: FrameLocation }[] = []
    for (let i = index.base + 1; i <= index.lastIndex; i++) {
      retained.push({ index: i, term: index.termAt(i) as number, from: index.locate(i) })
    }
    const batch = this.checkpointBatch
    batch.reset()
    batch.addCompacted(index.base, index.baseTerm)
    const firstEntry = batch.length
    const fds = new Map<number, number>()
    try {
      for (const entry of retained) {
        let fd = fds.get(entry.from.segment)
        if (fd === undefined) {
          fd = openSync(join(this.dir, segmentFileName(entry.from.segment)), "r")
          fds.set(entry.from.segment, fd)
        }
        readAllSync(fd, batch.reserve(entry.from.size), entry.from.offset, "shared WAL segment")
      }
    } finally {
      for (const fd of fds.values()) closeSync(fd)
    }
    const hardStateBytes = batch.addHardState(log.hardState, true)
    const { segment, batchStart } = this.writeFrame(nameBytes, SharedFrameFlag.Checkpoint, batch.contents())
    index.restart(index.base, index.baseTerm)
    let offset = batchStart + firstEntry
    for (const entry of retained) {
      index.append(entry.index, entry.term, { segment, offset, size: entry.from.size })
      offset += entry.from.size
    }
    log.hardStateBytes = hardStateBytes
    log.anchor = segment
  }
}

/** The log restarted at `snapshot`, keeping the entries after it where Raft's snapshot rule keeps them. */
const restartIndexAt = (index: WalIndex, snapshot: { readonly index: number; readonly term: number }): void => {
  const retained: { index: number; term: number; at: FrameLocation }[] = []
  if (keepsLogAfter(index, snapshot)) {
    for (let i = snapshot.index + 1; i <= index.lastIndex; i++) {
      retained.push({ index: i, term: index.termAt(i) as number, at: index.locate(i) })
    }
  }
  index.restart(snapshot.index, snapshot.term)
  for (const entry of retained) index.append(entry.index, entry.term, entry.at)
}

const checkBaseAgainstSnapshot = (dir: string, index: WalIndex, snapshot: Snapshot | undefined): void => {
  const point = snapshot === undefined ? "no snapshot" : `snapshot ${snapshot.index} (term ${snapshot.term})`
  if (index.base > (snapshot?.index ?? 0)) {
    throw new StorageCorrupt({
      path: dir,
      offset: 0,
      reason: `the shared WAL restarts this replica's log after entry ${index.base} but the newest snapshot is ${point}`,
    })
  }
  if (snapshot !== undefined && index.base === snapshot.index && index.baseTerm !== snapshot.term) {
    throw new StorageCorrupt({
      path: dir,
      offset: 0,
      reason: `the shared WAL restarts this replica's log after entry ${index.base} in term ${index.baseTerm}, but the ${point} disagrees`,
    })
  }
}

/** One replica's RaftStorage over the shared log. */
class SharedReplicaStorage implements RaftStorage {
  private recovered: PersistedState | undefined
  private snapshotIndex: number
  private snapshotDataBytes: number
  private closed = false
  /** A write is waiting for its flush; nothing else may change this replica until it is durable. */
  private waiting = false

  constructor(
    private readonly wal: SharedWal,
    private readonly name: string,
    readonly nameBytes: Uint8Array,
    private readonly dir: string,
    private readonly log: ReplicaLog,
    snapshot: Snapshot | undefined,
    recovered: PersistedState,
  ) {
    this.recovered = recovered
    this.snapshotIndex = snapshot?.index ?? 0
    this.snapshotDataBytes = snapshot?.data.length ?? 0
  }

  load(): PersistedState {
    this.ensureUsable()
    const recovered = this.recovered
    if (recovered !== undefined) {
      this.recovered = undefined
      return recovered
    }
    const snapshot = this.snapshotIndex === 0 ? undefined : readSnapshotFile(this.dir, this.snapshotIndex)
    return { hardState: this.log.hardState, snapshot, entries: this.wal.readEntries(this.log.index) }
  }

  save(hardState: HardState | undefined, entries: readonly Entry[]): void {
    if (!this.writeBatch(hardState, entries)) return
    this.wal.syncNow()
  }

  write(hardState: HardState | undefined, entries: readonly Entry[]): Effect.Effect<void> {
    if (!this.writeBatch(hardState, entries)) return Effect.void
    this.waiting = true
    const durable = this.wal.durable(this.name).then(
      () => {
        this.waiting = false
        return undefined
      },
      (error: unknown) => {
        this.waiting = false
        return error ?? new Error("shared WAL flush failed")
      },
    )
    return Effect.flatMap(
      Effect.promise(() => durable),
      (error) => (error === undefined ? Effect.void : Effect.die(error)),
    )
  }

  private writeBatch(hardState: HardState | undefined, entries: readonly Entry[]): boolean {
    this.ensureUsable()
    if (hardState === undefined && entries.length === 0) return false
    const index = this.log.index
    checkAppend(index, entries)
    if (hardState !== undefined) checkHardState(hardState)
    this.recovered = undefined
    const batch = this.wal.batchBuilder()
    batch.reset()
    const sizes: number[] = []
    for (const [k, entry] of entries.entries()) {
      sizes.push(batch.addEntry(entry, hardState === undefined && k === entries.length - 1))
    }
    const hardStateBytes = hardState === undefined ? 0 : batch.addHardState(hardState, true)
    const { segment, batchStart } = this.wal.writeFrame(this.nameBytes, 0, batch.contents())
    let offset = batchStart
    for (const [k, entry] of entries.entries()) {
      const size = sizes[k] as number
      index.append(entry.index, entry.term, { segment, offset, size })
      offset += size
    }
    if (hardState !== undefined) {
      this.log.hardState = { term: hardState.term, vote: hardState.vote, commit: hardState.commit }
      this.log.hardStateBytes = hardStateBytes
    }
    return true
  }

  saveSnapshot(snapshot: Snapshot): void {
    this.ensureUsable()
    checkSnapshot(snapshot)
    if (snapshot.index <= this.snapshotIndex) return
    this.recovered = undefined
    const previous = this.snapshotIndex
    writeSnapshotFile(this.dir, snapshot)
    // The log keeps the older records until a checkpoint moves past them; replay applies the same rule.
    restartIndexAt(this.log.index, snapshot)
    if (previous > 0) rmSync(join(this.dir, snapshotFileName(previous)), { force: true })
    this.snapshotIndex = snapshot.index
    this.snapshotDataBytes = snapshot.data.length
  }

  raftStateBytes(): number {
    return this.log.hardStateBytes + this.log.index.entryBytes
  }

  snapshotBytes(): number {
    return this.snapshotDataBytes
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    if (this.log.storage === this) this.wal.release(this.log)
  }

  private ensureUsable(): void {
    if (this.closed || this.log.storage !== this) throw new Error(`storage ${this.name} is closed`)
    if (this.waiting) throw new Error(`storage ${this.name}: called before the previous write was durable`)
    this.wal.ensureUsable()
  }
}
