/** The background loops' sleep (loopCadence.ts): loops started apart wake together, each interval. */
import { expect, test } from "bun:test"
import { Clock, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { untilNextInterval } from "../src/server/loopCadence.ts"

test("loops that start at different moments wake at the same multiples of the interval", async () => {
  const woke: Record<string, number[]> = { a: [], b: [] }
  await Effect.runPromise(
    Effect.gen(function* () {
      const loop = (name: string) =>
        Effect.gen(function* () {
          for (let i = 0; i < 3; i++) {
            yield* untilNextInterval(100)
            woke[name]!.push((yield* Clock.Clock).currentTimeMillisUnsafe())
          }
        })
      yield* TestClock.adjust(13)
      const a = yield* Effect.forkChild(loop("a"))
      yield* TestClock.adjust(64)
      const b = yield* Effect.forkChild(loop("b"))
      yield* TestClock.adjust(300)
      yield* Fiber.join(a)
      yield* Fiber.join(b)
    }).pipe(Effect.provide(TestClock.layer())),
  )
  expect(woke.a).toEqual([100, 200, 300])
  expect(woke.b).toEqual([100, 200, 300])
})

test("a loop just short of a boundary (a timer fired early) waits for the next one", async () => {
  const woke: number[] = []
  await Effect.runPromise(
    Effect.gen(function* () {
      yield* TestClock.adjust(99.5)
      const loop = yield* Effect.forkChild(
        Effect.gen(function* () {
          yield* untilNextInterval(100)
          woke.push((yield* Clock.Clock).currentTimeMillisUnsafe())
        }),
      )
      yield* TestClock.adjust(200)
      yield* Fiber.join(loop)
    }).pipe(Effect.provide(TestClock.layer())),
  )
  expect(woke).toEqual([200])
})
