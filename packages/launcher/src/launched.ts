/**
 * One child process: started with its arguments, environment and working directory, its output
 * kept (a bounded tail, for failure messages) or appended to a log file, waited on until it is
 * ready, and stopped gracefully or hard. Every child is killed if this process exits first.
 */
import { closeSync, openSync, readSync, statSync } from "node:fs"
import type { Subprocess } from "bun"
import { trackChild } from "./cleanup.ts"
import { pollUntil } from "./poll.ts"
import { type Protocol, portIsBound } from "./ports.ts"
import { Tail } from "./tail.ts"

export interface LaunchOptions {
  readonly cwd?: string
  /** Set in the environment the child inherits from this process; `undefined` removes a variable. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Appends stdout and stderr to this file instead of keeping them in memory (the file outlives the run). */
  readonly logFile?: string
  /** Characters of output kept for failure messages, per stream and combined. Default 64 KiB. */
  readonly tailChars?: number
  /** Opens an IPC channel to a Bun child; its messages arrive here and `send` talks back. */
  readonly ipc?: (message: unknown) => void
  /**
   * Tells a kv server who its parent is (`KV_PARENT_PID`), so it stops by itself once this process
   * is gone even when this process was killed with no chance to stop it. Default true.
   */
  readonly stopWithParent?: boolean
  /**
   * For a program that cannot read `KV_PARENT_PID` (etcd, any foreign binary): the kernel kills it
   * once this process is gone, however it ended (Linux, through util-linux's `setpriv --pdeathsig`;
   * elsewhere, or without setpriv, only this process's own exit handlers stop it). Default false.
   */
  readonly killWithParent?: boolean
}

export type ControlSignal = "SIGTERM" | "SIGINT" | "SIGKILL" | "SIGSTOP" | "SIGCONT" | "SIGHUP"

const DEFAULT_TAIL_CHARS = 64 * 1024
const DRAIN_AFTER_EXIT_MS = 1_000

let pdeathsig: readonly string[] | undefined
/** The prefix that makes the kernel kill a child when its parent ends; empty where there is none. */
const killedWithParent = (): readonly string[] => {
  pdeathsig ??= process.platform === "linux" && Bun.which("setpriv") !== null ? ["setpriv", "--pdeathsig", "KILL"] : []
  return pdeathsig
}

export const childEnvironment = (env: LaunchOptions["env"], stopWithParent: boolean): Record<string, string> => {
  const merged: Record<string, string | undefined> = { ...process.env }
  if (stopWithParent) merged.KV_PARENT_PID = String(process.pid)
  for (const [name, value] of Object.entries(env ?? {})) merged[name] = value
  const result: Record<string, string> = {}
  for (const [name, value] of Object.entries(merged)) if (value !== undefined) result[name] = value
  return result
}

interface OutputWaiter {
  readonly matches: (text: string) => boolean
  readonly resolve: () => void
}

export class Launched {
  readonly pid: number
  /** The exit code once it has exited (128 + the signal's number when a signal ended it). */
  readonly exited: Promise<number>
  private readonly proc: Subprocess<"ignore", "pipe" | number, "pipe" | number>
  private readonly combined: Tail
  private readonly streams: { readonly stdout: Tail; readonly stderr: Tail }
  private readonly logStart: number
  private waiters: OutputWaiter[] = []
  private exitCode: number | undefined
  private frozen = false

  constructor(
    readonly name: string,
    readonly command: readonly string[],
    private readonly options: LaunchOptions = {},
  ) {
    const tailChars = options.tailChars ?? DEFAULT_TAIL_CHARS
    this.combined = new Tail(tailChars)
    this.streams = { stdout: new Tail(tailChars), stderr: new Tail(tailChars) }
    const log = options.logFile === undefined ? undefined : openSync(options.logFile, "a")
    this.logStart = options.logFile === undefined ? 0 : statSync(options.logFile).size
    try {
      // setpriv sets the signal and execs the command: the pid is the command's own.
      const argv = options.killWithParent === true ? [...killedWithParent(), ...command] : [...command]
      this.proc = Bun.spawn(argv, {
        cwd: options.cwd,
        env: childEnvironment(options.env, options.stopWithParent ?? true),
        stdin: "ignore",
        stdout: log ?? "pipe",
        stderr: log ?? "pipe",
        ...(options.ipc === undefined ? {} : { ipc: options.ipc }),
      })
    } finally {
      // The child holds its own copy of the descriptor.
      if (log !== undefined) closeSync(log)
    }
    this.pid = this.proc.pid
    trackChild(this.proc)
    const drained =
      log === undefined
        ? Promise.all([this.drain(this.proc.stdout, "stdout"), this.drain(this.proc.stderr, "stderr")])
        : Promise.resolve()
    // The exit is reported once the output up to it has been read, so a failure message is complete
    // (bounded: a grandchild that inherited the pipes may keep them open after the child is gone).
    this.exited = this.proc.exited.then(async (code) => {
      await Promise.race([drained, Bun.sleep(DRAIN_AFTER_EXIT_MS)])
      this.exitCode = code
      return code
    })
  }

  private async drain(stream: ReadableStream<Uint8Array> | number, which: "stdout" | "stderr"): Promise<void> {
    if (typeof stream === "number") return
    const decoder = new TextDecoder()
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true })
      this.streams[which].push(text)
      this.combined.push(text)
      if (this.waiters.length > 0) {
        const output = this.combined.toString()
        this.waiters = this.waiters.filter((w) => {
          if (!w.matches(output)) return true
          w.resolve()
          return false
        })
      }
    }
  }

  get running(): boolean {
    return this.exitCode === undefined && this.proc.exitCode === null && this.proc.signalCode === null
  }

  /**
   * The end of what it printed (stdout and stderr interleaved, or one of them); read from the log
   * file when its output goes there.
   */
  output(stream?: "stdout" | "stderr"): string {
    if (this.options.logFile !== undefined) return this.logTail()
    return (stream === undefined ? this.combined : this.streams[stream]).toString()
  }

  private logTail(): string {
    const path = this.options.logFile!
    const limit = this.options.tailChars ?? DEFAULT_TAIL_CHARS
    const size = statSync(path).size
    const from = Math.max(this.logStart, size - limit)
    const bytes = Buffer.alloc(size - from)
    const fd = openSync(path, "r")
    try {
      readSync(fd, bytes, 0, bytes.length, from)
    } finally {
      closeSync(fd)
    }
    return bytes.toString("utf8")
  }

  /** Sends a message over the IPC channel (`ipc` in the options). */
  send(message: unknown): void {
    this.proc.send(message)
  }

  /** SIGSTOP freezes it (its sockets stay open, it answers nothing), SIGCONT resumes it. No-op once it has exited. */
  signal(signal: ControlSignal): void {
    if (!this.running) return
    if (signal === "SIGSTOP") this.frozen = true
    if (signal === "SIGCONT") this.frozen = false
    this.proc.kill(signal)
  }

  /** `kill -9`: no chance to flush or hand anything off. Resolves with the exit code. */
  kill(): Promise<number> {
    this.signal("SIGKILL")
    return this.exited
  }

  /**
   * Asks it to stop (`signal`, SIGTERM by default; a frozen process is resumed to see it) and
   * waits; SIGKILL if it has not exited within `graceMs`. Resolves with the exit code.
   */
  async stop(options: { readonly graceMs?: number; readonly signal?: "SIGTERM" | "SIGINT" } = {}): Promise<number> {
    if (!this.running) return this.exited
    this.signal(options.signal ?? "SIGTERM")
    if (this.frozen) this.signal("SIGCONT")
    const forced = setTimeout(() => this.signal("SIGKILL"), options.graceMs ?? 10_000)
    try {
      return await this.exited
    } finally {
      clearTimeout(forced)
    }
  }

  /**
   * Waits until its output contains `match` (a string, or a pattern); fails with the output so far
   * if it exits first or after `timeoutMs`.
   */
  async waitForOutput(match: string | RegExp, timeoutMs: number): Promise<void> {
    const matches = (text: string) => (typeof match === "string" ? text.includes(match) : match.test(text))
    const what = `${this.name} to print ${String(match)}`
    if (this.options.logFile !== undefined) {
      await this.pollWhileRunning(what, () => matches(this.output()), timeoutMs)
      return
    }
    if (matches(this.combined.toString())) return
    let waiter: OutputWaiter | undefined
    const printed = new Promise<void>((resolve) => {
      waiter = { matches, resolve }
      this.waiters.push(waiter)
    })
    let timer: Timer | undefined
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs)
    })
    try {
      const first = await Promise.race([printed.then(() => "printed" as const), this.exited, timedOut])
      if (first === "printed") return
      if (matches(this.combined.toString())) return
      throw new Error(
        first === "timeout"
          ? `timed out after ${timeoutMs} ms waiting for ${what}; its output:\n${this.output()}`
          : `${this.name} exited with code ${first} before printing ${String(match)}; its output:\n${this.output()}`,
      )
    } finally {
      clearTimeout(timer)
      this.waiters = this.waiters.filter((w) => w !== waiter)
    }
  }

  /** Waits until some socket is bound to `port` (a UDP server is up, a TCP server listens); fails if it exits first. */
  waitForPort(protocol: Protocol, port: number, timeoutMs: number): Promise<void> {
    return this.pollWhileRunning(
      `${this.name} to bind ${protocol} port ${port}`,
      () => portIsBound(protocol, port),
      timeoutMs,
    )
  }

  private async pollWhileRunning(what: string, ready: () => boolean, timeoutMs: number): Promise<void> {
    await pollUntil(
      what,
      () => {
        if (ready()) return true
        if (!this.running) throw new ExitedEarly(`${this.name} exited with code ${this.exitCode ?? this.proc.exitCode}`)
        return undefined
      },
      { timeoutMs, intervalMs: 25, stopOn: (error) => error instanceof ExitedEarly },
    ).catch((error: unknown) => {
      throw new Error(`${error instanceof Error ? error.message : String(error)}; its output:\n${this.output()}`)
    })
  }
}

class ExitedEarly extends Error {}
