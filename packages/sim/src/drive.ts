/**
 * Promise-style test bodies in virtual time. A lab test is written as an async function that
 * awaits its harness (`await lab.one(...)`, `await world.sleep(500)`); `drive` runs such a body
 * against the virtual clock: the body runs until it awaits something of the world, then the
 * clock steps (firing timers and running fibers) until one of the world's promises settles, and
 * the body continues. No wall time is waited for, and the interleaving is a function of the seed.
 *
 * Every promise the body awaits must come from `promise`, `exit` or `sleep` (or be settled by
 * host microtasks alone): a body that awaits the host (a real timer, a file, a socket) would stall
 * the world, which is reported as a `VirtualDeadlock` naming the virtual time.
 */
import { Cause, Clock, Effect, Exit, Random } from "effect"
import type { VirtualClock } from "./clock.ts"
import { effectClock, effectRandom, effectScheduler, VirtualDeadlock } from "./effect.ts"
import type { Rng } from "./rng.ts"

export interface DriveOptions {
  /** Virtual time (from now) after which the body is abandoned with a `VirtualDeadlock`. */
  readonly limitMs?: number
  /**
   * Wall time after which the run is abandoned (default 10 minutes): a test runner's own timeout
   * cannot stop this loop, which would otherwise go on starving the tests after it.
   */
  readonly wallLimitMs?: number
  /**
   * Events (timers, fiber tasks, wake-ups of the body) allowed at one virtual instant before the
   * run counts as a livelock (default 5,000,000): code that retries without any delay never lets
   * time move.
   */
  readonly maxEventsPerInstant?: number
}

// Host macrotask: every microtask queued before it (the body's continuations) runs first.
const hostTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

export class VirtualDriver {
  // Set when one of the world's promises settles: the body may be able to continue.
  private woke = false
  private readonly scheduler
  private readonly clockService
  private readonly randomService

  constructor(
    readonly clock: VirtualClock,
    rng: Rng,
  ) {
    this.scheduler = effectScheduler(clock)
    this.clockService = effectClock(clock)
    this.randomService = effectRandom(rng)
  }

  /** Runs `effect` in the world (virtual clock, seeded Random, virtual scheduler); settles in virtual time. */
  exit<A, E>(effect: Effect.Effect<A, E>): Promise<Exit.Exit<A, E>> {
    return new Promise((resolve) => {
      const fiber = Effect.runFork(
        effect.pipe(
          Effect.provideService(Clock.Clock, this.clockService),
          Effect.provideService(Random.Random, this.randomService),
        ),
        { scheduler: this.scheduler },
      )
      // Settled through the clock's queue, never synchronously: a body looping on calls that
      // complete at once still hands control to the driver on each turn, which can then see it.
      fiber.addObserver((exit) => {
        this.clock.enqueue(() => {
          this.woke = true
          resolve(exit)
        })
      })
    })
  }

  /** Like `exit`, rejecting with the failure (or defect) of `effect`. */
  async promise<A, E>(effect: Effect.Effect<A, E>): Promise<A> {
    const exit = await this.exit(effect)
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  }

  /** Resolves after `ms` of virtual time. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.clock.setTimer(Math.max(0, ms), () => {
        this.woke = true
        resolve()
      })
    })
  }

  /** Runs `body` to its end in virtual time (see the module comment). */
  async drive<A>(body: () => Promise<A>, options?: DriveOptions): Promise<A> {
    const limit = this.clock.now() + (options?.limitMs ?? Number.POSITIVE_INFINITY)
    const wallDeadline = performance.now() + (options?.wallLimitMs ?? 600_000)
    const maxPerInstant = options?.maxEventsPerInstant ?? 5_000_000
    let instant = this.clock.now()
    let eventsAtInstant = 0
    let events = 0
    const count = (): void => {
      if (this.clock.now() !== instant) {
        instant = this.clock.now()
        eventsAtInstant = 0
      }
      eventsAtInstant++
      if (eventsAtInstant > maxPerInstant) {
        throw new VirtualDeadlock(
          `livelock: ${maxPerInstant} events at ${instant} ms of virtual time, which never moves on`,
        )
      }
      if ((++events & 0xfff) === 0 && performance.now() > wallDeadline) {
        throw new VirtualDeadlock(
          `abandoned after ${options?.wallLimitMs ?? 600_000} ms of wall time at ${instant} ms of virtual time`,
        )
      }
    }
    let outcome: { readonly ok: true; readonly value: A } | { readonly ok: false; readonly error: unknown } | undefined
    body().then(
      (value) => {
        outcome = { ok: true, value }
      },
      (error: unknown) => {
        outcome = { ok: false, error }
      },
    )
    for (;;) {
      await hostTurn()
      if (outcome !== undefined) break
      this.woke = false
      while (!this.woke) {
        count()
        const due = this.clock.nextDue()
        if (this.clock.drainReady() > 0) continue
        if (due === undefined) {
          // The body may be waiting on host microtasks only; give it one more turn before giving up.
          await hostTurn()
          if (outcome !== undefined || this.woke) break
          throw new VirtualDeadlock(
            `the test waits at ${this.clock.now()} ms of virtual time on something outside the world`,
          )
        }
        if (due > limit)
          throw new VirtualDeadlock(`the test did not finish within ${options?.limitMs} ms of virtual time`)
        this.clock.step()
      }
    }
    if (outcome.ok) return outcome.value
    throw outcome.error
  }
}
