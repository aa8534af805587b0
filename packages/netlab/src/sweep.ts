/**
 * Namespaces outlive the process that made them: a test run killed with `kill -9` leaves its lab
 * behind. Every lab's names carry the pid of the process that made it, so the next lab removes
 * those whose maker is gone (and kills whatever still runs inside them) before it builds its own.
 */
import { ipQuiet, namespaces, pidsIn } from "./ipCommand.ts"

export const NAME_PREFIX = "kvnl-"

/** `kvnl-<pid>-<lab>-<part>`: the pid of the process that made the namespace. */
const makerOf = (name: string): number | undefined => {
  const match = /^kvnl-(\d+)-/.exec(name)
  return match === null ? undefined : Number(match[1])
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: alive, someone else's.
    return (error as { code?: unknown }).code === "EPERM"
  }
}

/** Kills what runs in namespace `name`, then deletes it (its veth ends go with it). */
export const removeNamespace = (name: string): void => {
  for (const pid of pidsIn(name)) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {}
  }
  ipQuiet(["netns", "delete", name])
}

/** Removes every lab namespace whose maker has exited; returns their names. */
export const sweepStaleNamespaces = (): string[] => {
  const stale = namespaces().filter((name) => {
    const maker = makerOf(name)
    return maker !== undefined && maker !== process.pid && !isAlive(maker)
  })
  for (const name of stale) removeNamespace(name)
  return stale
}
