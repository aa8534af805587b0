/**
 * One server per data directory: a replica takes `<dataDir>/<storage>.lock` before it opens its
 * storage, and refuses to start while another live process holds it (two processes appending to
 * one write-ahead log would corrupt it). A lock left by a process that died (kill -9, power loss)
 * is taken over. The lock file sits beside the replica's directory, not in it, so an empty data
 * directory still reads as empty.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs"
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

/** Takes the lock at `path` or throws DataDirHeld. Returns the release function. */
export const takeLock = (path: string, what: string): (() => void) => {
  mkdirSync(dirname(path), { recursive: true })
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
      throw new DataDirHeld(
        `${what} is in use by process ${holder.pid} on ${holder.host} (lock ${path}): another server is running ` +
          "on this data directory; stop it first (if no such process runs, remove the lock file)",
      )
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
