import { type MemoryDisk, Storage } from "@kv/raft"
import { RpcNode, type RpcNodeShape, SimNetwork, type Timers, Transport } from "@kv/rpc"
import {
  type DriveOptions,
  effectClock,
  type Rng,
  runInWorld,
  Seed,
  simLayer,
  VirtualClock,
  VirtualDriver,
} from "@kv/sim"
import { Clock, Context, Effect, Exit, Layer, Scope } from "effect"

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
  readonly driver: VirtualDriver

  constructor(readonly seed: number) {
    this.root = new Seed(seed)
    const rpcRandom = this.root.stream("rpc")
    const clock = this.clock
    this.timers = {
      now: () => clock.now(),
      setTimer: (delayMs, fn) => clock.setTimer(delayMs, fn),
      clearTimer: (handle) => {
        clock.cancelTimer(handle as number)
      },
      random: () => rpcRandom.nextDouble(),
    }
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
      Layer.provide(Transport.layerSim(this.network, address, { timers: this.timers })),
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
      const scope = yield* Scope.make()
      world.scopes.set(address, scope)
      const context = yield* Layer.buildWithScope(
        Layer.merge(world.nodeLayer(address), Storage.layerMemory(world.disks)),
        scope,
      )
      return yield* build.pipe(
        Effect.provideContext(context),
        Effect.provideService(Clock.Clock, world.skewedClock(world.skewMs.get(address) ?? 0)),
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

  private skewedClock(offsetMs: number): Clock.Clock {
    const base = effectClock(this.clock)
    if (offsetMs === 0) return base
    const clock = this.clock
    return {
      ...base,
      currentTimeMillisUnsafe: () => clock.now() + offsetMs,
      currentTimeMillis: Effect.sync(() => clock.now() + offsetMs),
    }
  }
}
