/**
 * The JIT policy a server process starts with: raised before its replicas restore, normal again
 * once every replica in the process has replayed (shard groups share one process), or at the cap.
 */
import { expect, test } from "bun:test"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import { STARTUP_JIT_CAP_MS, STARTUP_JIT_SCALE, StartupJit } from "../src/process/startupJit.ts"

/** A policy holder whose every setting is recorded in `set`. */
const recorded = () => {
  const set: number[] = []
  return { set, jit: new StartupJit((scale) => set.push(scale)) }
}

test("the thresholds stay raised until every start in the process has replayed", async () => {
  const { set, jit } = recorded()
  await Effect.runPromise(
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const first = yield* jit.raiseUntil().pipe(Scope.provide(scope))
      const second = yield* jit.raiseUntil().pipe(Scope.provide(scope))
      expect(set).toEqual([STARTUP_JIT_SCALE])
      const replayedA = yield* Deferred.make<void>()
      const replayedB = yield* Deferred.make<void>()
      const a = yield* Effect.forkChild(first(Deferred.await(replayedA)))
      const b = yield* Effect.forkChild(second(Deferred.await(replayedB)))
      yield* Deferred.succeed(replayedA, undefined)
      yield* Fiber.join(a)
      expect(set).toEqual([STARTUP_JIT_SCALE])
      yield* Deferred.succeed(replayedB, undefined)
      yield* Fiber.join(b)
      expect(set).toEqual([STARTUP_JIT_SCALE, 1])
      // Closing the scope after the release changes nothing.
      yield* Scope.close(scope, Exit.void)
      expect(set).toEqual([STARTUP_JIT_SCALE, 1])
    }),
  )
})

test("a replay that never ends releases the thresholds at the cap, and so does a start that fails", async () => {
  const { set, jit } = recorded()
  await Effect.runPromise(
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const until = yield* jit.raiseUntil().pipe(Scope.provide(scope))
      const waiting = yield* Effect.forkChild(until(Effect.never))
      yield* TestClock.adjust(STARTUP_JIT_CAP_MS - 1)
      expect(set).toEqual([STARTUP_JIT_SCALE])
      yield* TestClock.adjust(1)
      yield* Fiber.join(waiting)
      expect(set).toEqual([STARTUP_JIT_SCALE, 1])
      // A start whose replicas never got built: its scope closes with the policy raised.
      const failed = yield* Scope.make()
      yield* jit.raiseUntil().pipe(Scope.provide(failed))
      expect(set).toEqual([STARTUP_JIT_SCALE, 1, STARTUP_JIT_SCALE])
      yield* Scope.close(failed, Exit.void)
      expect(set).toEqual([STARTUP_JIT_SCALE, 1, STARTUP_JIT_SCALE, 1])
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.provide(TestClock.layer())),
  )
})
