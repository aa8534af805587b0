/**
 * One server per data directory: a replica takes `<dataDir>/<storage>.lock` before it opens its
 * storage, and refuses to start while another live process holds it (two processes appending to
 * one write-ahead log would corrupt it). The lock is an advisory lock of the kernel (flock) on that
 * file, held as long as the process keeps it open, so a process that dies (kill -9, power loss)
 * releases it at once and two starting processes can never both take it. The file names the
 * holder, for the message. Where flock cannot be reached, a pid file takes its place: a lock left
 * by a process that is gone is taken over. The lock file sits beside the replica's directory, not
 * in it, so an empty data directory still reads as empty.
 */
import { dlopen, FFIType } from "bun:ffi"
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs"
import { hostname } from "node:os"
import { dirname, join } from "node:path"
import { Effect, type Scope } from "effect"

export interface LockHolder {
  readonly pid: number
  /** The process's start time in clock ticks since boot (/proc/<pid>/stat), so a reused pid is not taken for it. */
  readonly started: string
  readonly host: string
}

/** Why the lock could not be taken. */
export class DataDirHeld extends Error {
  override readonly name = "DataDirHeld"
}

const startTimeOf = (pid: number): string => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // Field 22, counted after the command name (which may hold spaces) closes with ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? ""
  } catch {
    return ""
  }
}

const isRunning = (holder: LockHolder): boolean => {
  if (holder.host !== hostname()) return true // another machine's process: it cannot be checked from here
  try {
    process.kill(holder.pid, 0)
  } catch (error) {
    // EPERM: it exists, owned by someone else.
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false
  }
  const started = startTimeOf(holder.pid)
  return started === "" || holder.started === "" || started === holder.started
}

const readHolder = (path: string): LockHolder | undefined => {
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<LockHolder>
    if (typeof parsed.pid !== "number" || typeof parsed.host !== "string") return undefined
    return { pid: parsed.pid, started: String(parsed.started ?? ""), host: parsed.host }
  } catch {
    return undefined
  }
}

const self = (): LockHolder => ({ pid: process.pid, started: startTimeOf(process.pid), host: hostname() })

const LOCK_EX = 2
const LOCK_NB = 4

/** flock(2) from the C library, when this platform lets us reach it. */
const flock: ((fd: number, operation: number) => number) | undefined = (() => {
  try {
    const lib = dlopen(process.platform === "darwin" ? "libc.dylib" : "libc.so.6", {
      flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    })
    return (fd: number, operation: number) => lib.symbols.flock(fd, operation)
  } catch {
    return undefined
  }
})()

const heldMessage = (path: string, what: string, holder: LockHolder | undefined) =>
  `${what} is in use by ${holder === undefined ? "another process" : `process ${holder.pid} on ${holder.host}`} ` +
  `(lock ${path}): another server is running on this data directory; stop it first`

/** Takes the lock at `path` or throws DataDirHeld. Returns the release function. */
export const takeLock = (path: string, what: string): (() => void) => {
  mkdirSync(dirname(path), { recursive: true })
  if (flock === undefined) return takePidLock(path, what)
  const fd = openSync(path, "a+", 0o644)
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    closeSync(fd)
    throw new DataDirHeld(heldMessage(path, what, readHolder(path)))
  }
  ftruncateSync(fd, 0)
  writeSync(fd, `${JSON.stringify(self())}\n`)
  // Closing the file releases the kernel's lock; the file stays, naming its last holder.
  return () => closeSync(fd)
}

/** The lock as a pid file, where flock is out of reach. */
const takePidLock = (path: string, what: string): (() => void) => {
  const me = self()
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o644)
      try {
        writeSync(fd, `${JSON.stringify(me)}\n`)
      } finally {
        closeSync(fd)
      }
      return () => {
        const holder = readHolder(path)
        if (holder?.pid === me.pid && holder.host === me.host) unlinkSync(path)
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    }
    const holder = readHolder(path)
    if (holder !== undefined && isRunning(holder)) {
      throw new DataDirHeld(`${heldMessage(path, what, holder)} (if no such process runs, remove the lock file)`)
    }
    // Left by a process that is gone (or unreadable: a crash while writing it): take it over.
    if (existsSync(path)) unlinkSync(path)
  }
  throw new DataDirHeld(`${what}: could not take the lock ${path}; another server keeps starting on it`)
}

/** Holds the lock of replica storage `storageName` under `dataDir` for the life of the scope. */
export const lockReplicaDir = (dataDir: string, storageName: string): Effect.Effect<void, DataDirHeld, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => takeLock(join(dataDir, `${storageName}.lock`), `data directory ${join(dataDir, storageName)}`),
      catch: (error) => (error instanceof DataDirHeld ? error : new DataDirHeld(String(error))),
    }),
    (release) => Effect.sync(release),
  ).pipe(Effect.asVoid)
