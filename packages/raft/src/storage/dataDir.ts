/** File names and durable file operations of a server's data directory. */
import {
  closeSync,
  fdatasync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  writeSync,
} from "node:fs"
import { dirname, join, resolve } from "node:path"

const pad16 = (n: number): string => n.toString().padStart(16, "0")

export const segmentFileName = (seq: number): string => `wal-${pad16(seq)}.log`
export const snapshotFileName = (index: number): string => `snap-${pad16(index)}.snap`
export const TEMP_SUFFIX = ".tmp"

const SEGMENT_NAME = /^wal-(\d{16})\.log$/
const SNAPSHOT_NAME = /^snap-(\d{16})\.snap$/
// A snapshot written off the event loop has a temporary name of its own (prepareSnapshotFile).
const TEMP_NAME = /^(wal-\d{16}\.log|snap-\d{16}\.snap)(\.prepared)?\.tmp$/

export interface DataDirListing {
  /** WAL segment sequence numbers, ascending. */
  readonly segments: number[]
  /** Snapshot indexes, ascending. */
  readonly snapshots: number[]
  /** Leftovers of writes interrupted before their rename; never part of the state. */
  readonly temporaries: string[]
}

/** Files that are not ours are left alone. */
export const listDataDir = (dir: string): DataDirListing => {
  const segments: number[] = []
  const snapshots: number[] = []
  const temporaries: string[] = []
  for (const name of readdirSync(dir)) {
    const segment = SEGMENT_NAME.exec(name)?.[1]
    const snapshot = SNAPSHOT_NAME.exec(name)?.[1]
    if (segment !== undefined) segments.push(Number(segment))
    else if (snapshot !== undefined) snapshots.push(Number(snapshot))
    else if (TEMP_NAME.test(name)) temporaries.push(name)
  }
  segments.sort((a, b) => a - b)
  snapshots.sort((a, b) => a - b)
  return { segments, snapshots, temporaries }
}

/** Makes creations, renames and removals of directory entries durable. */
export const fsyncDir = (dir: string): void => {
  const fd = openSync(dir, "r")
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * Creates `dir` and any missing parents, fsyncing the parent of each created directory: otherwise a
 * crash could lose the whole data directory together with everything synced inside it.
 */
export const makeDirDurably = (dir: string): void => {
  const firstCreated = mkdirSync(dir, { recursive: true })
  if (firstCreated === undefined) return
  const stop = dirname(resolve(firstCreated))
  for (let created = resolve(dir); created !== stop; created = dirname(created)) fsyncDir(dirname(created))
}

export const writeAllSync = (fd: number, bytes: Uint8Array, position: number): void => {
  let done = 0
  while (done < bytes.length) {
    done += writeSync(fd, bytes, done, bytes.length - done, position + done)
  }
}

/** Fills `target` from `position`; throws if the file ends first. */
export const readAllSync = (fd: number, target: Uint8Array, position: number, what: string): void => {
  let done = 0
  while (done < target.length) {
    const read = readSync(fd, target, done, target.length - done, position + done)
    if (read === 0) throw new Error(`${what} ends before byte ${position + target.length}`)
    done += read
  }
}

/** fdatasync on the runtime's thread pool: the event loop keeps turning while the disk works. */
export const fdatasyncOnPool = (fd: number): Promise<void> =>
  new Promise((resolve, reject) => fdatasync(fd, (error) => (error == null ? resolve() : reject(error))))

/** A WAL segment's size limit and how far ahead of its data it is filled with zeros, by default. */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
export const DEFAULT_PREALLOCATE_BYTES = 4 * 1024 * 1024

let zeros = new Uint8Array(0)
/** `length` zero bytes (a shared buffer: written out, never kept). */
export const zeroBytes = (length: number): Uint8Array => {
  if (zeros.length < length) zeros = new Uint8Array(length)
  return zeros.subarray(0, length)
}

/**
 * Creates `name` with `chunks` so that after a crash it either does not exist or is complete:
 * written under a temporary name, fsynced, renamed, and the directory fsynced.
 */
export const writeFileAtomically = (dir: string, name: string, chunks: readonly Uint8Array[]): void => {
  const temp = join(dir, name + TEMP_SUFFIX)
  const fd = openSync(temp, "w")
  try {
    let position = 0
    for (const chunk of chunks) {
      writeAllSync(fd, chunk, position)
      position += chunk.length
    }
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(temp, join(dir, name))
  fsyncDir(dir)
}
