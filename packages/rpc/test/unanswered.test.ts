/**
 * A call's `onUnanswered` hears every retransmission timeout that passes without a reply, before
 * the resend, and the function it is given ends the call at once as a `Timeout`. Virtual time,
 * one client and one server over SimNetwork (each datagram takes 1 ms).
 */
import { describe, expect, test } from "bun:test"
import { runInWorld, Seed, VirtualClock, virtualTimers } from "@kv/sim"
import { Cause, Effect, Exit, type Scope } from "effect"
import {
  type CallOptions,
  makeRpcNode,
  makeTransport,
  type RpcNodeShape,
  SimNetwork,
  seedFromEnv,
  type Timers,
} from "../src/index.ts"
import { Echo } from "./support.ts"

const seed = seedFromEnv()
console.log(`rpc unanswered seed: ${seed} (replay: KV_SEED=${seed} bun test packages/rpc/test/unanswered.test.ts)`)

/** A server that answers requests with `n` below 100 at once and never answers the others. */
const withServer = (body: (client: RpcNodeShape, timers: Timers) => Effect.Effect<void, unknown, Scope.Scope>) => {
  const clock = new VirtualClock()
  const root = new Seed(seed)
  const timers = virtualTimers(clock, root.stream("rpc"))
  const network = new SimNetwork({ seed, schedule: (delayMs, fn) => clock.setTimer(delayMs + 1, fn) })
  const scoped: Effect.Effect<void, unknown, Scope.Scope> = Effect.gen(function* () {
    const server = makeRpcNode(yield* makeTransport((d) => network.open("s", d), { timers }), { timers })
    server.handleWith(Echo, (request, _from, reply) => {
      if (request.n < 100) reply({ ...request, servedBy: "s" })
    })
    const client = makeRpcNode(yield* makeTransport((d) => network.open("c", d), { timers }), { timers })
    yield* body(client, timers)
  })
  const exit = runInWorld(clock, root.stream("effect"), Effect.scoped(scoped))
  if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
}

/** A call the server never answers, abandoned when told for the `abandonAt`-th time: its exit, how often it was told, and how long it took. */
const abandonedCall = (client: RpcNodeShape, timers: Timers, abandonAt: number, options: CallOptions = {}) =>
  Effect.gen(function* () {
    let told = 0
    const start = timers.now()
    const exit = yield* Effect.exit(
      client.call(
        "s",
        Echo,
        { n: 100, text: "" },
        {
          deadlineMs: 10_000,
          ...options,
          onUnanswered: (abandon) => {
            if (++told === abandonAt) abandon()
          },
        },
      ),
    )
    return { exit, told, elapsed: timers.now() - start }
  })

describe("a call told of each unanswered timeout", () => {
  test("is told once per timeout, and ends at once when it abandons", () =>
    withServer((client, timers) =>
      Effect.gen(function* () {
        for (let n = 0; n < 20; n++) yield* client.call("s", Echo, { n, text: "" })
        const { exit, told, elapsed } = yield* abandonedCall(client, timers, 3)
        expect(told).toBe(3)
        expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toMatchObject({ _tag: "Timeout", to: "s" })
        // Three timeouts of a few ms each, not the 10 s deadline.
        expect(elapsed).toBeLessThan(100)
        // Two copies went out again (after the first and second timeouts), none after the third.
        expect(client.transport.stats.requestsResent).toBe(2)
      }),
    ))

  test("a call answered in time is never told", () =>
    withServer((client) =>
      Effect.gen(function* () {
        let told = 0
        for (let n = 0; n < 20; n++) {
          const reply = yield* client.call("s", Echo, { n, text: "" }, { onUnanswered: () => told++ })
          expect(reply.n).toBe(n)
        }
        expect(told).toBe(0)
      }),
    ))

  test("with a fixed attempt interval it is told before each backoff", () =>
    withServer((client, timers) =>
      Effect.gen(function* () {
        const { exit, told, elapsed } = yield* abandonedCall(client, timers, 2, { attemptTimeoutMs: 50, backoffMs: 10 })
        expect(told).toBe(2)
        expect(Exit.isFailure(exit)).toBe(true)
        // Two attempts of 50 ms and one backoff of 8–12 ms between them.
        expect(elapsed).toBeGreaterThanOrEqual(100)
        expect(elapsed).toBeLessThan(120)
      }),
    ))
})
