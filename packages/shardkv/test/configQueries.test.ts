/**
 * Configuration queries shared by the groups of one process (configQueries.ts): one controller
 * read answers every group for a while, never longer than `freshMs` for "nothing newer", and never
 * holds up a group walking configurations that exist.
 */
import { expect, test } from "bun:test"
import { type Config, makeConfig } from "@kv/shardctrler"
import { Deferred, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { ConfigQueries } from "../src/server/configQueries.ts"

const FRESH_MS = 100

const config = (num: number): Config => makeConfig(num, new Array(10).fill(100), new Map([[100, ["127.0.0.1:1"]]]))

/** A controller holding configurations 0..latest; counts the questions it is asked. */
const controller = (latest: { num: number }) => {
  const asked: number[] = []
  const query = (num: number) =>
    Effect.sync(() => {
      asked.push(num)
      return config(Math.min(num, latest.num))
    })
  return { asked, query }
}

const run = <A, E>(body: Effect.Effect<A, E>) => Effect.runPromise(body.pipe(Effect.provide(TestClock.layer())))

test("'nothing newer' answers the other groups until it is freshMs old", async () => {
  const latest = { num: 3 }
  const { asked, query } = controller(latest)
  const shared = new ConfigQueries(FRESH_MS)
  await run(
    Effect.gen(function* () {
      expect((yield* shared.query(4, query(4))).num).toBe(3)
      // Two more groups at configuration 3 ask within the interval: no controller read.
      expect((yield* shared.query(4, query(4))).num).toBe(3)
      yield* TestClock.adjust(FRESH_MS - 1)
      expect((yield* shared.query(4, query(4))).num).toBe(3)
      expect(asked).toEqual([4])
      // A configuration made meanwhile is seen once the answer is old.
      latest.num = 4
      yield* TestClock.adjust(1)
      expect((yield* shared.query(4, query(4))).num).toBe(4)
      expect(asked).toEqual([4, 4])
    }),
  )
})

test("a configuration found by number is kept, and says nothing of newer ones", async () => {
  const latest = { num: 6 }
  const { asked, query } = controller(latest)
  const shared = new ConfigQueries(FRESH_MS)
  await run(
    Effect.gen(function* () {
      // A group walking 4, 5, 6 asks for each at once: none waits on a stale "latest".
      for (const num of [4, 5, 6]) expect((yield* shared.query(num, query(num))).num).toBe(num)
      expect(asked).toEqual([4, 5, 6])
      // Another group walking the same ones behind it is answered here.
      for (const num of [4, 5, 6]) expect((yield* shared.query(num, query(num))).num).toBe(num)
      expect(asked).toEqual([4, 5, 6])
      expect((yield* shared.query(7, query(7))).num).toBe(6)
      expect((yield* shared.query(7, query(7))).num).toBe(6)
      expect(asked).toEqual([4, 5, 6, 7])
    }),
  )
})

test("a question on its way answers those asked meanwhile; a failed one leaves each to ask", async () => {
  const shared = new ConfigQueries(FRESH_MS)
  let reads = 0
  await run(
    Effect.gen(function* () {
      const answer = yield* Deferred.make<Config>()
      const slow = Effect.suspend(() => {
        reads++
        return Deferred.await(answer)
      })
      const first = yield* Effect.forkChild(shared.query(2, slow))
      yield* Effect.yieldNow
      const second = yield* Effect.forkChild(shared.query(2, slow))
      yield* Effect.yieldNow
      yield* Deferred.succeed(answer, config(1))
      expect((yield* Fiber.join(first)).num).toBe(1)
      expect((yield* Fiber.join(second)).num).toBe(1)
      expect(reads).toBe(1)

      const failing = Effect.suspend(() => {
        reads++
        return Effect.fail("unreachable" as const)
      })
      yield* TestClock.adjust(FRESH_MS)
      const gate = yield* Deferred.make<void>()
      const held = yield* Effect.forkChild(shared.query(2, Effect.andThen(Deferred.await(gate), failing)))
      yield* Effect.yieldNow
      const waiting = yield* Effect.forkChild(shared.query(2, Effect.succeed(config(1))))
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Effect.flip(Fiber.join(held))).toBe("unreachable")
      // The waiter asked for itself once the first question failed.
      expect((yield* Fiber.join(waiting)).num).toBe(1)
    }),
  )
})

test("a question whose asker is interrupted leaves the others to ask, and later questions are asked", async () => {
  const shared = new ConfigQueries(FRESH_MS)
  await run(
    Effect.gen(function* () {
      const never = yield* Deferred.make<Config>()
      const first = yield* Effect.forkChild(shared.query(2, Deferred.await(never)))
      yield* Effect.yieldNow
      const waiting = yield* Effect.forkChild(shared.query(2, Effect.succeed(config(1))))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(first)
      expect((yield* Fiber.join(waiting)).num).toBe(1)
      // Nothing is left registered: a question after the answer's freshness is asked anew.
      yield* TestClock.adjust(FRESH_MS)
      expect((yield* shared.query(2, Effect.succeed(config(2)))).num).toBe(2)
    }),
  )
})
