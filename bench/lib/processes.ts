/**
 * Every process and temporary directory the benchmark starts, so that all of it is stopped and
 * removed at the end, on an error, and on Ctrl-C.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Subprocess } from "bun"

export interface Started {
  readonly name: string
  readonly proc: Subprocess
  /** The last lines it printed, for failure reports. */
  output(): string
}

const running = new Set<Subprocess>()
const dirs = new Set<string>()

export const makeTempDir = (prefix: string): string => {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`))
  dirs.add(dir)
  return dir
}

export const removeTempDir = (dir: string): void => {
  rmSync(dir, { recursive: true, force: true })
  dirs.delete(dir)
}

/** Starts a command; its output is kept (the last 64 KiB) instead of mixing into the progress. */
export const start = (
  name: string,
  cmd: readonly string[],
  options: { readonly cwd?: string; readonly ipc?: (message: unknown) => void } = {},
): Started => {
  let log = ""
  // KV_BENCH_PROFILE=<dir>: every bun process (servers and load) writes a CPU profile (markdown) there on exit.
  const profileDir = process.env.KV_BENCH_PROFILE
  const argv =
    profileDir !== undefined && cmd[0] === "bun"
      ? ["bun", "--cpu-prof-md", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.md`, ...cmd.slice(1)]
      : cmd
  const proc = Bun.spawn([...argv], {
    cwd: options.cwd,
    stdout: "pipe",
    stderr: "pipe",
    ...(options.ipc === undefined ? {} : { ipc: options.ipc }),
  })
  running.add(proc)
  void proc.exited.then(() => running.delete(proc))
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) log = (log + decoder.decode(chunk)).slice(-65_536)
  }
  void drain(proc.stdout)
  void drain(proc.stderr)
  return { name, proc, output: () => log }
}

/** SIGTERM, then SIGKILL for whatever has not exited within `graceMs`. */
export const stop = async (procs: readonly Started[], graceMs = 3_000): Promise<void> => {
  for (const p of procs) p.proc.kill("SIGTERM")
  const timer = setTimeout(() => {
    for (const p of procs) p.proc.kill("SIGKILL")
  }, graceMs)
  await Promise.all(procs.map((p) => p.proc.exited))
  clearTimeout(timer)
}

/** Kills everything still running and removes every temporary directory (synchronously: also on exit). */
export const cleanUpEverything = (): void => {
  for (const proc of running) proc.kill("SIGKILL")
  running.clear()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  dirs.clear()
}

export const cleanUpOnExit = (): void => {
  process.on("exit", cleanUpEverything)
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      console.error(`\n${signal}: stopping every process the benchmark started`)
      cleanUpEverything()
      process.exit(130)
    })
  }
}

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

/** Free UDP ports on 127.0.0.1 (bound to port 0, then released). */
export const freeUdpPorts = async (count: number): Promise<number[]> => {
  const sockets = await Promise.all(
    Array.from({ length: count }, () => Bun.udpSocket({ hostname: "127.0.0.1", port: 0 })),
  )
  const ports = sockets.map((s) => s.port)
  for (const s of sockets) s.close()
  return ports
}

/** Free TCP ports on 127.0.0.1 (for etcd). */
export const freeTcpPorts = async (count: number): Promise<number[]> => {
  const servers = Array.from({ length: count }, () =>
    Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }),
  )
  const ports = servers.map((s) => s.port)
  for (const s of servers) s.stop(true)
  return ports
}
