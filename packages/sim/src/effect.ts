/**
 * The world's clock and randomness as Effect services. Under `runInWorld`, `Effect.sleep`,
 * `Effect.timeout` and `Schedule` wait on virtual timers, and every fiber resumes through the
 * clock's ready queue instead of the host's event loop, so a run is deterministic and hours of
 * virtual time pass in milliseconds.
 */
import { Clock, Context, Duration, Effect, Exit, type Fiber, Layer, Random, Scheduler } from "effect"
import type { VirtualClock } from "./clock.ts"
import type { Rng } from "./rng.ts"

const nanosPerMs = 1_000_000n

/** A `Clock` whose time is the virtual clock's and whose `sleep` is a virtual timer. */
export const effectClock = (clock: VirtualClock): Clock.Clock => {
  const nanos = (): bigint => BigInt(Math.floor(clock.now())) * nanosPerMs
  return {
    currentTimeMillisUnsafe: () => clock.now(),
    currentTimeMillis: Effect.sync(() => clock.now()),
    currentTimeNanosUnsafe: nanos,
    currentTimeNanos: Effect.sync(nanos),
    monotonicTimeNanosUnsafe: nanos,
    monotonicTimeNanos: Effect.sync(nanos),
    sleep: (duration: Duration.Duration) =>
      Effect.callback<void>((resume) => {
        const ms = Duration.toMillis(duration)
        const id = clock.setTimer(Number.isFinite(ms) ? Math.max(0, ms) : Number.MAX_SAFE_INTEGER, () =>
          resume(Effect.void),
        )
        // An interrupted sleep (a lost race, a timeout) must not leave its timer behind.
        return Effect.sync(() => {
          clock.cancelTimer(id)
        })
      }),
  }
}

/** A `Scheduler` that runs fiber tasks from the virtual clock's ready queue. */
export const effectScheduler = (clock: VirtualClock): Scheduler.Scheduler => ({
  executionMode: "async",
  shouldYield: (fiber: Fiber.Fiber<unknown, unknown>) => fiber.currentOpCount >= fiber.cache.maxOpsBeforeYield,
  makeDispatcher: () => ({
    scheduleTask: (task, priority) => clock.enqueue(task, priority),
    flush: () => {
      clock.drainReady()
    },
  }),
})

/** A `Random` drawing from one seeded stream. */
export const effectRandom = (rng: Rng): Random.Random => ({
  nextIntUnsafe: () => rng.nextInt(Number.MAX_SAFE_INTEGER),
  nextDoubleUnsafe: () => rng.nextDouble(),
})

/** Clock, Random and Scheduler over the world's clock and one random stream. */
export const simLayer = (clock: VirtualClock, rng: Rng): Layer.Layer<never> =>
  Layer.succeedContext(
    Context.make(Clock.Clock, effectClock(clock)).pipe(
      Context.add(Random.Random, effectRandom(rng)),
      Context.add(Scheduler.Scheduler, effectScheduler(clock)),
    ),
  )

export class VirtualDeadlock extends Error {
  readonly _tag = "VirtualDeadlock"
}

/**
 * Runs `effect` inside the world: steps the virtual clock until the fiber exits. Fails with
 * `VirtualDeadlock` (as a defect) when nothing is left to run and the fiber still waits, and
 * stops at `untilMs` of virtual time if given. No wall time is spent waiting.
 */
export const runInWorld = <A, E>(
  clock: VirtualClock,
  rng: Rng,
  effect: Effect.Effect<A, E>,
  options?: { readonly untilMs?: number },
): Exit.Exit<A, E> => {
  const scheduler = effectScheduler(clock)
  const fiber = Effect.runFork(
    effect.pipe(
      Effect.provideService(Clock.Clock, effectClock(clock)),
      Effect.provideService(Random.Random, effectRandom(rng)),
    ),
    { scheduler },
  )
  const limit = options?.untilMs ?? Number.POSITIVE_INFINITY
  for (;;) {
    clock.drainReady()
    const exit = fiber.pollUnsafe()
    if (exit !== undefined) return exit
    const due = clock.nextDue()
    if (due === undefined) {
      return Exit.die(new VirtualDeadlock(`fiber still waiting at ${clock.now()} ms with no timer pending`))
    }
    if (due > limit) {
      clock.runUntil(limit)
      fiber.interruptUnsafe()
      clock.drainReady()
      return fiber.pollUnsafe() ?? Exit.die(new VirtualDeadlock(`fiber did not stop at ${limit} ms`))
    }
    clock.step()
  }
}
