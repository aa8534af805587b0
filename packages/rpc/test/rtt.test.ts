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
   * client's next datagram to the server is lost after `loseNext()`; the server takes `slow.ms` to answer.
   */
  const withEcho = (
    body: (
      call: (n: number) => Effect.Effect<number, unknown>,
      loseNext: () => void,
      rtt: RttEstimator,
      timers: Timers,
      slow: { ms: number },
    ) => Effect.Effect<void, unknown>,
  ) => {
    const clock = new VirtualClock()
    const root = new Seed(seed)
    const timers = virtualTimers(clock, root.stream("rpc"))
    const network = new SimNetwork({ seed, schedule: (delayMs, fn) => clock.setTimer(delayMs + 1, fn) })
    let lose = false
    const slow = { ms: 0 }
    network.setLinkFilter((from, to) => {
      if (!lose || from !== "c" || to !== "s") return true
      lose = false
      return false
    })
    const scoped: Effect.Effect<void, unknown, Scope.Scope> = Effect.gen(function* () {
      // The world's services, so the handler's sleep runs on the virtual clock.
      const services = yield* Effect.context<never>()
      const server = makeRpcNode(yield* makeTransport((d) => network.open("s", d), { timers }), { timers, services })
      server.handle(Echo, (request) =>
        slow.ms === 0 ? { ...request, servedBy: "s" } : Effect.as(Effect.sleep(slow.ms), { ...request, servedBy: "s" }),
      )
      const client = makeRpcNode(yield* makeTransport((d) => network.open("c", d), { timers }), { timers })
      const call = (n: number) => Effect.map(client.call("s", Echo, { n, text: "" }), (reply) => reply.n)
      yield* body(
        call,
        () => {
          lose = true
        },
        client.rtt,
        timers,
        slow,
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

  test("a reply names the copy it answers: a lost request is measured from its resend", () =>
    withEcho((call, loseNext, rtt) =>
      Effect.gen(function* () {
        loseNext()
        expect(yield* call(0)).toBe(0)
        // The first copy was lost; the reply answers the resend, 2 ms after it left.
        expect(rtt.srttMs("s")).toBe(2)
      }),
    ))

  test("a reply to the first copy that comes after a resend is measured from the first copy, and the timeout grows", () =>
    withEcho((call, _loseNext, rtt, _timers, slow) =>
      Effect.gen(function* () {
        for (let n = 0; n < 20; n++) yield* call(n)
        expect(rtt.rtoMs("s")).toBe(5)
        // The server takes 8 ms: the request is resent after 5, and the answer to the first copy
        // (10 ms after it left) is a sample, where Karn's rule would have discarded it.
        slow.ms = 8
        expect(yield* call(20)).toBe(20)
        expect(rtt.srttMs("s")).toBeCloseTo(0.875 * 2 + 0.125 * 10, 1)
        expect(rtt.rtoMs("s")).toBeGreaterThan(9)
      }),
    ))
})
