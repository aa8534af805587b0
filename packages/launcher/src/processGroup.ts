/**
 * Named child processes started together (a cluster's replicas): started, restarted under the
 * same name, frozen, killed, and stopped all at once. A program that owns one (a test, the bench)
 * gets every child killed on Ctrl-C as well as on exit; the cluster script, which stops its
 * replicas gracefully on a signal, says `killOnSignals: false` and does that itself.
 */
import { killEverythingOnSignals } from "./cleanup.ts"
import { type ControlSignal, Launched, type LaunchOptions } from "./launched.ts"

export interface ProcessGroupOptions {
  /** Every child killed (and this process exited) on SIGINT, SIGTERM and SIGHUP. Default true. */
  readonly killOnSignals?: boolean
  /** Defaults for every start; a start's own `env` is added to these. */
  readonly defaults?: LaunchOptions
}

export class ProcessGroup {
  private readonly byName = new Map<string, Launched>()

  constructor(private readonly options: ProcessGroupOptions = {}) {}

  /** Starts `command` under `name`; a name may be reused once its previous process has exited. */
  start(name: string, command: readonly string[], options: LaunchOptions = {}): Launched {
    if (this.byName.get(name)?.running) throw new Error(`${name} is already running`)
    if (this.options.killOnSignals ?? true) killEverythingOnSignals()
    const defaults = this.options.defaults ?? {}
    const launched = new Launched(name, command, {
      ...defaults,
      ...options,
      env: { ...defaults.env, ...options.env },
    })
    this.byName.set(name, launched)
    return launched
  }

  /** The process last started under `name`, running or not. */
  get(name: string): Launched | undefined {
    return this.byName.get(name)
  }

  /** Every process last started under each name, in the order the names were first used. */
  all(): Launched[] {
    return [...this.byName.values()]
  }

  isRunning(name: string): boolean {
    return this.byName.get(name)?.running ?? false
  }

  /** The end of what the process last started under `name` printed ("" if there is none). */
  output(name: string): string {
    return this.byName.get(name)?.output() ?? ""
  }

  signal(name: string, signal: ControlSignal): void {
    this.byName.get(name)?.signal(signal)
  }

  /** `kill -9` and its exit; undefined when nothing runs under `name`. */
  async kill(name: string): Promise<number | undefined> {
    const launched = this.byName.get(name)
    return launched?.running ? launched.kill() : undefined
  }

  /** SIGTERM, SIGKILL after `graceMs`; the exit code, or undefined when nothing runs under `name`. */
  async stop(name: string, graceMs?: number): Promise<number | undefined> {
    const launched = this.byName.get(name)
    return launched?.running ? launched.stop(graceMs === undefined ? {} : { graceMs }) : undefined
  }

  /** Stops every running process at once: SIGTERM (or `signal`), then SIGKILL for any still running after `graceMs`. */
  async stopAll(options: { readonly graceMs?: number; readonly signal?: "SIGTERM" | "SIGINT" } = {}): Promise<void> {
    await Promise.all(this.all().map((launched) => launched.stop(options)))
  }

  /** `kill -9` for every running process (a test's data is thrown away: no need to stop gracefully). */
  async killAll(): Promise<void> {
    await Promise.all(this.all().map((launched) => launched.kill()))
  }
}
