/**
 * Processes in the world. A process is a function that receives its clock, random stream,
 * network endpoint and disk. A crash drops its timers, its handler and whatever it kept in
 * memory (the closure is simply never called again), and crashes its disk; a restart calls
 * the function again on the same disk.
 */
import type { TimerId, VirtualClock } from "./clock.ts"
import type { TraceDigest } from "./digest.ts"
import { type DiskOptions, SimDisk } from "./disk.ts"
import type { Address, DatagramHandler, Endpoint, SimNetwork } from "./network.ts"
import type { Rng, Seed } from "./rng.ts"

/** The clock as one incarnation of a process sees it: its timers die with it. */
export class ProcessClock {
  private readonly owned = new Set<TimerId>()
  private alive = true

  constructor(private readonly clock: VirtualClock) {}

  now(): number {
    return this.clock.now()
  }

  setTimer(delayMs: number, fn: () => void, label = ""): TimerId {
    if (!this.alive) return -1
    const id = this.clock.setTimer(
      delayMs,
      () => {
        this.owned.delete(id)
        fn()
      },
      label,
    )
    this.owned.add(id)
    return id
  }

  cancelTimer(id: TimerId): boolean {
    this.owned.delete(id)
    return this.clock.cancelTimer(id)
  }

  /** Cancels every timer of this incarnation; later `setTimer` calls do nothing. */
  kill(): void {
    this.alive = false
    for (const id of this.owned) this.clock.cancelTimer(id)
    this.owned.clear()
  }
}

export interface ProcessContext {
  readonly address: Address
  /** 0 for the first start, +1 per restart. */
  readonly incarnation: number
  readonly clock: ProcessClock
  /** A stream of its own per incarnation, so one process's draws never shift another's. */
  readonly random: Rng
  readonly endpoint: Endpoint
  readonly disk: SimDisk
  /** Sets the handler for datagrams to this process. */
  onDatagram(handler: DatagramHandler): void
}

export type ProcessMain = (context: ProcessContext) => void

interface ProcessEntry {
  readonly main: ProcessMain
  readonly disk: SimDisk
  incarnation: number
  clock: ProcessClock | undefined
}

export class ProcessRegistry {
  private readonly processes = new Map<Address, ProcessEntry>()

  constructor(
    private readonly clock: VirtualClock,
    private readonly network: SimNetwork,
    private readonly seed: Seed,
    private readonly trace?: TraceDigest,
  ) {}

  /** Starts a new process at `address` with a fresh disk. */
  start(address: Address, main: ProcessMain, disk?: DiskOptions): void {
    if (this.processes.has(address)) throw new Error(`process ${address} already exists`)
    const entry: ProcessEntry = {
      main,
      disk: new SimDisk(this.seed.stream(`disk:${address}`), disk, this.trace, address),
      incarnation: -1,
      clock: undefined,
    }
    this.processes.set(address, entry)
    this.boot(address, entry)
  }

  isRunning(address: Address): boolean {
    return this.processes.get(address)?.clock !== undefined
  }

  disk(address: Address): SimDisk {
    return this.entry(address).disk
  }

  incarnation(address: Address): number {
    return this.entry(address).incarnation
  }

  /** Kills the process: timers and handler dropped, disk crashed. No-op if already down. */
  crash(address: Address): void {
    const entry = this.entry(address)
    if (entry.clock === undefined) return
    entry.clock.kill()
    entry.clock = undefined
    this.network.detach(address)
    this.trace?.record("crash", this.clock.now(), address, entry.incarnation)
    entry.disk.crash()
  }

  /** Starts the next incarnation on the same disk; a running process is crashed first. */
  restart(address: Address): void {
    const entry = this.entry(address)
    this.crash(address)
    this.boot(address, entry)
  }

  private boot(address: Address, entry: ProcessEntry): void {
    entry.incarnation++
    const clock = new ProcessClock(this.clock)
    entry.clock = clock
    const incarnation = entry.incarnation
    let handler: DatagramHandler | undefined
    const endpoint = this.network.attach(address, (datagram) => handler?.(datagram))
    this.trace?.record(incarnation === 0 ? "start" : "restart", this.clock.now(), address, incarnation)
    entry.main({
      address,
      incarnation,
      clock,
      random: this.seed.stream(`process:${address}:${incarnation}`),
      endpoint,
      disk: entry.disk,
      onDatagram: (h) => {
        // A handler set by a dead incarnation must not come back.
        if (entry.clock === clock) handler = h
      },
    })
  }

  private entry(address: Address): ProcessEntry {
    const entry = this.processes.get(address)
    if (entry === undefined) throw new Error(`no process ${address}`)
    return entry
  }
}
