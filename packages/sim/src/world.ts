/**
 * One seeded world: a virtual clock, a network, processes with disks, and a trace digest,
 * all driven from one seed. A run is a pure function of the seed and the driver's calls.
 */
import { VirtualClock } from "./clock.ts"
import { TraceDigest } from "./digest.ts"
import { type NetworkOptions, SimNetwork } from "./network.ts"
import { ProcessRegistry } from "./process.ts"
import type { Rng } from "./rng.ts"
import { Seed } from "./rng.ts"

export interface WorldOptions {
  readonly seed: number | Seed
  readonly network?: NetworkOptions
  /** Keep every trace line (for finding where two runs part); off by default. */
  readonly keepEvents?: boolean
}

export class World {
  readonly seed: Seed
  readonly trace: TraceDigest
  readonly clock: VirtualClock
  readonly network: SimNetwork
  readonly processes: ProcessRegistry

  constructor(options: WorldOptions) {
    this.seed = typeof options.seed === "number" ? new Seed(options.seed) : options.seed
    this.trace = new TraceDigest({ keepEvents: options.keepEvents ?? false })
    this.clock = new VirtualClock({ trace: this.trace })
    this.network = new SimNetwork(this.clock, this.seed.stream("network"), options.network, this.trace)
    this.processes = new ProcessRegistry(this.clock, this.network, this.seed, this.trace)
  }

  /** An independent stream for `purpose` (e.g. "client", "faults"). */
  stream(purpose: string): Rng {
    return this.seed.stream(purpose)
  }

  now(): number {
    return this.clock.now()
  }

  step(): boolean {
    return this.clock.step()
  }

  runUntil(t: number): void {
    this.clock.runUntil(t)
  }

  /** The digest of every event so far. */
  get digest(): string {
    return this.trace.value
  }
}
