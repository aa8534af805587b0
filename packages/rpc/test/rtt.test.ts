import { describe, expect, test } from "bun:test"
import { runInWorld, Seed, VirtualClock, virtualTimers } from "@kv/sim"
import { Cause, Effect, Exit, type Scope } from "effect"
import { makeRpcNode, makeTransport, RttEstimator, SimNetwork, seedFromEnv, type Timers } from "../src/index.ts"
import { Echo } from "./support.ts"

const seed = seedFromEnv()
console.log(`rpc rtt seed: ${seed} (replay: KV_SEED=${seed} bun test packages/rpc/test/rtt.test.ts)`)

describe("retransmission timeout from measured round trips", () => {
  test("the first sample sets SRTT and half of it as variance; later ones are smoothed (RFC 6298)", () => {
    const rtt = new RttEstimator({ minRtoMs: 1, maxRtoMs: 10_000, initialRtoMs: 300 })
    expect(rtt.rtoMs("s")).toBe(300)
    rtt.sample("s", 40)
    expect(rtt.srttMs("s")).toBe(40)
    expect(rtt.rtoMs("s")).toBe(40 + 4 * 20)
    rtt.sample("s", 20)
    // RTTVAR = 3/4·20 + 1/4·|40 − 20| = 20; SRTT = 7/8·40 + 1/8·20 = 37.5
    expect(rtt.srttMs("s")).toBe(37.5)
    expect(rtt.rtoMs("s")).toBe(37.5 + 4 * 20)
    // Another destination is measured on its own.
    expect(rtt.rtoMs("t")).toBe(300)
  })

  test("the timeout is clamped and doubles on each resend up to the ceiling", () => {
    const rtt = new RttEstimator({ minRtoMs: 5, maxRtoMs: 100 })
    for (let i = 0; i < 50; i++) rtt.sample("s", 0.2)
    expect(rtt.rtoMs("s")).toBe(5)
    expect(rtt.rtoMs("s", 1)).toBe(10)
    expect(rtt.rtoMs("s", 3)).toBe(40)
    expect(rtt.rtoMs("s", 10)).toBe(100)
  })

  /**
   * A client and an echo server over SimNetwork in virtual time (each datagram takes 1 ms); the
   * client's next datagram to the server is lost after `loseNext()`.
   */
  const withEcho = (
    body: (
      call: (n: number) => Effect.Effect<number, unknown>,
      loseNext: () => void,
      rtt: RttEstimator,
      timers: Timers,
    ) => Effect.Effect<void, unknown>,
  ) => {
    const clock = new VirtualClock()
    const root = new Seed(seed)
    const timers = virtualTimers(clock, root.stream("rpc"))
    const network = new SimNetwork({ seed, schedule: (delayMs, fn) => clock.setTimer(delayMs + 1, fn) })
    let lose = false
    network.setLinkFilter((from, to) => {
      if (!lose || from !== "c" || to !== "s") return true
      lose = false
      return false
    })
    const scoped: Effect.Effect<void, unknown, Scope.Scope> = Effect.gen(function* () {
      const server = makeRpcNode(yield* makeTransport((d) => network.open("s", d), { timers }), { timers })
      server.handle(Echo, (request) => ({ ...request, servedBy: "s" }))
      const client = makeRpcNode(yield* makeTransport((d) => network.open("c", d), { timers }), { timers })
      const call = (n: number) => Effect.map(client.call("s", Echo, { n, text: "" }), (reply) => reply.n)
      yield* body(
        call,
        () => {
          lose = true
        },
        client.rtt,
        timers,
      )
    })
    const exit = runInWorld(clock, root.stream("effect"), Effect.scoped(scoped))
    if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
  }

  test("a lost request is sent again after about the measured round trip, not a fixed timer", () =>
    withEcho((call, loseNext, rtt, timers) =>
      Effect.gen(function* () {
        for (let n = 0; n < 20; n++) yield* call(n)
        // Round trips of 2 ms: the timeout is the 5 ms floor.
        expect(rtt.srttMs("s")).toBeCloseTo(2, 0)
        loseNext()
        const start = timers.now()
        expect(yield* call(20)).toBe(20)
        const elapsed = timers.now() - start
        // One timeout (5 ms) and one more round trip; a fixed 250 ms timer would take over 250 ms.
        expect(elapsed).toBeLessThan(20)
        expect(elapsed).toBeGreaterThanOrEqual(5)
      }),
    ))

  test("the reply to a resent request is no round-trip sample (Karn's rule)", () =>
    withEcho((call, loseNext, rtt) =>
      Effect.gen(function* () {
        loseNext()
        expect(yield* call(0)).toBe(0)
        // The only reply answered a resend: which copy it answers is unknown, so nothing is learned.
        expect(rtt.srttMs("s")).toBeUndefined()
        yield* call(1)
        expect(rtt.srttMs("s")).toBeCloseTo(2, 0)
      }),
    ))
})
