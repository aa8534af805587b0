import type { MemoryDisk, Storage } from "@kv/raft"
import { RpcNode, type RpcNodeShape, SimNetwork, type Timers, Transport } from "@kv/rpc"
import {
  type DriveOptions,
  effectClock,
  effectScheduler,
  type Rng,
  runInWorld,
  Seed,
  simLayer,
  VirtualClock,
  VirtualDriver,
  virtualTimers,
} from "@kv/sim"
import { Clock, Context, Effect, Exit, Layer, Scope } from "effect"
import { crashingStorageLayer, type SaveCrash } from "./crashingStorage.ts"

export interface SimWorldOptions {
  /**
   * Largest message every node's transport carries (default the transport's, 8 MiB). A world with
   * small messages makes "larger than one Raft message" cheap to reach: Raft's largest entry, and
   * every size derived from it, shrinks with it.
   */
  readonly maxMessageBytes?: number
}

/**
 * The servers and clients of one seeded run in virtual time: one clock drives the network's
 * delays, every node's timers and every fiber; each purpose draws from its own seeded stream; a
 * server is a process that can crash (its memory is gone, its disk keeps what it saved) and
 * restart, optionally with its wall clock off by hours. Build everything inside `run` (an Effect
 * program) or `drive` (a Promise-style test body, as the lab mirrors are written).
 */
export class SimWorld {
  readonly clock = new VirtualClock()
  readonly root: Seed
  readonly network: SimNetwork
  readonly timers: Timers
  readonly disks = new Map<string, MemoryDisk>()
  /** Per address, how far that process's wall clock is off. */
  readonly skewMs = new Map<string, number>()
  private readonly scopes = new Map<string, Scope.Closeable>()
  /** Addresses whose next durable write is interrupted by a crash (see `crashDuringNextSave`). */
  private readonly saveCrashes = new Map<string, SaveCrash>()
  private diskFaultStream: Rng | undefined
  readonly driver: VirtualDriver

  constructor(
    readonly seed: number,
    private readonly options: SimWorldOptions = {},
  ) {
    this.root = new Seed(seed)
    const rpcRandom = this.root.stream("rpc")
    const clock = this.clock
    this.timers = virtualTimers(clock, rpcRandom)
    this.network = new SimNetwork({ seed, schedule: (delayMs, fn) => clock.setTimer(delayMs, fn) })
    this.driver = new VirtualDriver(clock, this.root.stream("driver"))
  }

  /** Runs a Promise-style body in virtual time; it awaits the world through `promise` and `sleep`. */
  drive<A>(body: () => Promise<A>, options?: DriveOptions): Promise<A> {
    return this.driver.drive(body, options)
  }

  /** `effect` run in the world, as a promise a `drive` body can await. */
  promise<A, E>(effect: Effect.Effect<A, E>): Promise<A> {
    return this.driver.promise(effect)
  }

  /** Resolves after `ms` of virtual time (inside `drive`). */
  sleep(ms: number): Promise<void> {
    return this.driver.sleep(ms)
  }

  stream(purpose: string): Rng {
    return this.root.stream(purpose)
  }

  now(): number {
    return this.clock.now()
  }

  isRunning(address: string): boolean {
    return this.scopes.has(address)
  }

  /** Addresses of the servers running now. */
  runningAddresses(): string[] {
    return [...this.scopes.keys()]
  }

  private nodeLayer(address: string) {
    return RpcNode.layerWith({ timers: this.timers }).pipe(
      Layer.provide(
        Transport.layerSim(this.network, address, {
          timers: this.timers,
          ...(this.options.maxMessageBytes === undefined ? {} : { maxMessageBytes: this.options.maxMessageBytes }),
        }),
      ),
    )
  }

  /** A client's RpcNode, living as long as the run. */
  client(address: string): Effect.Effect<RpcNodeShape, unknown, Scope.Scope> {
    return Layer.build(this.nodeLayer(address)).pipe(Effect.map((context) => Context.get(context, RpcNode)))
  }

  /** Starts (or restarts) the server at `address` on its disk, with its clock skew if any. */
  start<A, E>(
    address: string,
    build: Effect.Effect<A, E, Scope.Scope | RpcNode | Storage>,
  ): Effect.Effect<A, E | unknown> {
    const world = this
    return Effect.gen(function* () {
      yield* world.crash(address)
      world.saveCrashes.delete(address)
      const scope = yield* Scope.make()
      world.scopes.set(address, scope)
      const storage = crashingStorageLayer(world.disks, () => world.saveCrashes.get(address))
      const context = yield* Layer.buildWithScope(Layer.merge(world.nodeLayer(address), storage), scope)
      return yield* build.pipe(
        Effect.provideContext(context),
        Effect.provideService(Clock.Clock, world.skewedClock(address)),
        Scope.provide(scope),
      )
    })
  }

  /** Cuts `addresses` into two random non-empty sides. */
  partitionRandomly(addresses: readonly string[], rng: Rng): void {
    const shuffled = [...addresses].sort(() => rng.nextDouble() - 0.5)
    const cut = 1 + rng.nextInt(addresses.length - 1)
    this.network.partition([shuffled.slice(0, cut), shuffled.slice(cut)])
  }

  /** Every link whole and clean again: no partition, loss or duplication, small delays. */
  healNetwork(): void {
    this.network.heal()
    this.network.setDropRate(0)
    this.network.setDuplicateRate(0)
    this.network.setMaxDelay(5)
  }

  /** Kills the server at `address`: timers, memory and sockets gone; its disk stays. */
  crash(address: string): Effect.Effect<void> {
    return Effect.suspend(() => {
      const scope = this.scopes.get(address)
      if (scope === undefined) return Effect.void
      this.scopes.delete(address)
      return Scope.close(scope, Exit.void)
    })
  }

  /**
   * The server at `address` crashes during its next durable write (a Raft save or snapshot), as a
   * process killed inside write+fsync, or whose fsync failed (the server stops on that): the
   * write is kept whole or lost whole (a torn WAL batch is discarded on recovery), chosen by the
   * seed, and the server acts on nothing after it: it is cut off at once and crashed before any
   * timer fires.
   */
  crashDuringNextSave(address: string): void {
    const crash: SaveCrash = {
      keep: () => this.diskFaults.chance(0.5),
      died: () => {
        this.network.disconnect(address)
        // Before any timer fires (no datagram, no heal), the process is gone.
        Effect.runFork(this.crash(address).pipe(Effect.ensuring(Effect.sync(() => this.network.connect(address)))), {
          scheduler: effectScheduler(this.clock),
        })
      },
    }
    this.saveCrashes.set(address, crash)
  }

  private get diskFaults(): Rng {
    this.diskFaultStream ??= this.stream("disk-faults")
    return this.diskFaultStream
  }

  /** No armed crash is left waiting for a write (faults are over). */
  disarmSaveCrashes(): void {
    this.saveCrashes.clear()
  }

  /** Moves the wall clock of `address` by `deltaMs` now (a running server sees the jump at once). */
  jumpClock(address: string, deltaMs: number): void {
    this.skewMs.set(address, (this.skewMs.get(address) ?? 0) + deltaMs)
  }

  /** Runs `program` in virtual time to its end (or `untilMs`); no wall time is waited for. */
  run<A, E>(program: Effect.Effect<A, E, Scope.Scope>, untilMs: number): Exit.Exit<A, E> {
    const world = this
    const whole = Effect.gen(function* () {
      const result = yield* program
      for (const address of [...world.scopes.keys()]) yield* world.crash(address)
      return result
    }).pipe(Effect.scoped, Effect.provide(simLayer(this.clock, this.stream("effect"))))
    return runInWorld(this.clock, this.stream("effect"), whole, { untilMs })
  }

  // The wall clock reads the address's skew at every call, so a jump reaches a running server;
  // monotonic time never jumps.
  private skewedClock(address: string): Clock.Clock {
    const base = effectClock(this.clock)
    const clock = this.clock
    const wall = () => clock.now() + (this.skewMs.get(address) ?? 0)
    return { ...base, currentTimeMillisUnsafe: wall, currentTimeMillis: Effect.sync(wall) }
  }
}
