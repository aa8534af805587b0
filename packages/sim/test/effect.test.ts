// Proves that Effect's sleep, timeout and Schedule run on the virtual clock: hours pass in milliseconds.
import { describe, expect, test } from "bun:test"
import { Effect, Exit, Fiber, Random, Schedule } from "effect"
import { runInWorld, Seed, VirtualClock } from "../src/index.ts"

const hourMs = 3_600_000

describe("Effect in virtual time", () => {
  test("fibers sleep for hours of virtual time and wake in order, with no wall time passing", () => {
    const clock = new VirtualClock()
    const woke: Array<string> = []
    const program = Effect.gen(function* () {
      const a = yield* Effect.forkChild(
        Effect.sleep("3 hours").pipe(Effect.andThen(Effect.sync(() => woke.push(`a@${clock.now()}`)))),
      )
      const b = yield* Effect.forkChild(
        Effect.sleep("1 hour").pipe(Effect.andThen(Effect.sync(() => woke.push(`b@${clock.now()}`)))),
      )
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      return clock.now()
    })
    const started = performance.now()
    const exit = runInWorld(clock, new Seed(1).stream("effect"), program)
    const wallMs = performance.now() - started
    expect(exit).toEqual(Exit.succeed(3 * hourMs))
    expect(woke).toEqual([`b@${hourMs}`, `a@${3 * hourMs}`])
    expect(wallMs).toBeLessThan(1000)
  })

  test("a timeout fires in virtual time and cancels the losing sleep's timer", () => {
    const clock = new VirtualClock()
    const program = Effect.sleep("2 hours").pipe(Effect.timeout("30 minutes"), Effect.exit)
    const exit = runInWorld(clock, new Seed(1).stream("effect"), program)
    expect(Exit.isSuccess(exit)).toBe(true)
    if (Exit.isSuccess(exit)) expect(Exit.isFailure(exit.value)).toBe(true)
    expect(clock.now()).toBe(30 * 60_000)
    expect(clock.pending).toBe(0)
  })

  test("a Schedule spaces repetitions in virtual time", () => {
    const clock = new VirtualClock()
    const times: Array<number> = []
    const program = Effect.sync(() => times.push(clock.now())).pipe(
      Effect.repeat(Schedule.spaced("10 minutes")),
      Effect.asVoid,
    )
    const exit = runInWorld(clock, new Seed(1).stream("effect"), program, { untilMs: 35 * 60_000 })
    expect(Exit.hasInterrupts(exit)).toBe(true)
    expect(times).toEqual([0, 600_000, 1_200_000, 1_800_000])
  })

  test("Effect's Random draws from the seeded stream", () => {
    const draw = (seed: number) =>
      runInWorld(
        new VirtualClock(),
        new Seed(seed).stream("client"),
        Effect.all([Random.nextInt, Random.next, Random.nextIntBetween(1, 6)]),
      )
    expect(draw(7)).toEqual(draw(7))
    expect(draw(7)).not.toEqual(draw(8))
  })

  test("a fiber waiting on nothing is reported as a deadlock, not a hang", () => {
    const exit = runInWorld(new VirtualClock(), new Seed(1).stream("effect"), Effect.never)
    expect(Exit.isFailure(exit)).toBe(true)
  })
})
