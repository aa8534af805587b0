/**
 * The benchmark's processes and temporary directories, through the launcher shared with the
 * tests and `bun run cluster`: all of it is stopped and removed at the end, on an error, and on
 * Ctrl-C. What is the bench's own: CPU profiles on request, and reading a process's CPU time.
 */
import { readFileSync } from "node:fs"
import { killEverythingOnSignals, Launched, type TempDir, tempDir } from "@kv/launcher"

export { freeTcpPorts, freeUdpPorts } from "@kv/launcher"

/** A started process: `name`, `pid`, `output()` (the last 64 KiB it printed), `exited`, `send`. */
export type Started = Launched

const dirs = new Map<string, TempDir>()

export const makeTempDir = (prefix: string): string => {
  const dir = tempDir(prefix)
  dirs.set(dir.path, dir)
  return dir.path
}

export const removeTempDir = (path: string): void => {
  dirs.get(path)?.remove()
  dirs.delete(path)
}

/** Starts a command; its output is kept (the last 64 KiB) instead of mixing into the progress. */
export const start = (
  name: string,
  cmd: readonly string[],
  options: {
    readonly cwd?: string
    readonly ipc?: (message: unknown) => void
    readonly env?: Readonly<Record<string, string>>
    /** A program that cannot read KV_PARENT_PID (etcd): killed by the kernel when the bench or test ends. */
    readonly killWithParent?: boolean
  } = {},
): Started => {
  // KV_BENCH_PROFILE=<dir>: every bun process (servers and load) writes a CPU profile (markdown) there on exit.
  const profileDir = process.env.KV_BENCH_PROFILE
  const argv =
    profileDir !== undefined && cmd[0] === "bun"
      ? ["bun", "--cpu-prof-md", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.md`, ...cmd.slice(1)]
      : cmd
  return new Launched(name, argv, options)
}

/** SIGTERM, then SIGKILL for whatever has not exited within `graceMs`. */
export const stop = async (procs: readonly Started[], graceMs = 3_000): Promise<void> => {
  await Promise.all(procs.map((p) => p.stop({ graceMs })))
}

export const cleanUpOnExit = (): void =>
  killEverythingOnSignals((signal) => console.error(`\n${signal}: stopping every process the benchmark started`))

/** User + system CPU seconds a process has used (Linux /proc; 100 ticks per second). NaN once gone. */
export const cpuSecondsOf = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command name may contain spaces; the fields after it start past the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return Number.NaN
  }
}
