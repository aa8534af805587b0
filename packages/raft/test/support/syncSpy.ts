/**
 * node:fs wrapped so a test sees which files get synced: every call passes through, and while
 * `watch` runs its body the synced paths are recorded. Import it before the storage modules (load
 * those with a dynamic import), so they bind to the wrapped functions.
 */
import { mock } from "bun:test"
import * as fs from "node:fs"

/** The unwrapped module, for the test's own file work. */
export const realFs = { ...fs }

let recording: string[] | undefined
const note = (fd: number) => {
  if (recording === undefined) return
  try {
    recording.push(realFs.readlinkSync(`/proc/self/fd/${fd}`))
  } catch {
    recording.push(`fd ${fd}`)
  }
}
mock.module("node:fs", () => ({
  ...realFs,
  fdatasyncSync: (fd: number) => {
    note(fd)
    realFs.fdatasyncSync(fd)
  },
  fsyncSync: (fd: number) => {
    note(fd)
    realFs.fsyncSync(fd)
  },
  fdatasync: (fd: number, done: (error: NodeJS.ErrnoException | null) => void) => {
    note(fd)
    realFs.fdatasync(fd, done)
  },
}))

/** Runs `body` and returns the paths of the files and directories it synced (other test files share the module). */
export const watchSyncs = (body: () => void): string[] => {
  const synced: string[] = []
  recording = synced
  try {
    body()
  } finally {
    recording = undefined
  }
  return synced
}
