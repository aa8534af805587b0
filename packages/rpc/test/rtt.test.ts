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

  test("a thin call's first six resends wait one timeout each, then the doubling starts", () => {
    const rtt = new RttEstimator({ minRtoMs: 5, maxRtoMs: 1_000 })
    for (let i = 0; i < 50; i++) rtt.sample("s", 0.2)
    const thin = Array.from({ length: 10 }, (_, attempt) => rtt.rtoMs("s", attempt, true))
    expect(thin).toEqual([5, 5, 5, 5, 5, 5, 5, 10, 20, 40])
    expect(rtt.rtoMs("s", 40, true)).toBe(1_000)
  })

  /**
   * A client and an echo server over SimNetwork in virtual time (each datagram takes 1 ms); the
   * client's next datagram to the server is lost after `loseNext()`.
   */
  const withEcho = (
    body: (
      call: (n: number) => Effect.Effect<number, unknown>,
      loseNext: (count?: number) => void,
      rtt: RttEstimator,
      timers: Timers,
    ) => Effect.Effect<void, unknown>,
  ) => {
    const clock = new VirtualClock()
    const root = new Seed(seed)
    const timers = virtualTimers(clock, root.stream("rpc"))
    const network = new SimNetwork({ seed, schedule: (delayMs, fn) => clock.setTimer(delayMs + 1, fn) })
    let lose = 0
    network.setLinkFilter((from, to) => {
      if (lose === 0 || from !== "c" || to !== "s") return true
      lose--
      return false
    })
    const scoped: Effect.Effect<void, unknown, Scope.Scope> = Effect.gen(function* () {
      const server = makeRpcNode(yield* makeTransport((d) => network.open("s", d), { timers }), { timers })
      server.handle(Echo, (request) => ({ ...request, servedBy: "s" }))
      const client = makeRpcNode(yield* makeTransport((d) => network.open("c", d), { timers }), { timers })
      const call = (n: number) => Effect.map(client.call("s", Echo, { n, text: "" }), (reply) => reply.n)
      yield* body(
        call,
        (count = 1) => {
          lose = count
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

  test("a lone call that loses three datagrams in a row waits three timeouts, not seven", () =>
    withEcho((call, loseNext, rtt, timers) =>
      Effect.gen(function* () {
        for (let n = 0; n < 20; n++) yield* call(n)
        const rto = rtt.rtoMs("s")
        loseNext(3)
        const start = timers.now()
        expect(yield* call(20)).toBe(20)
        const elapsed = timers.now() - start
        // Resent after 1, 2 and 3 timeouts, answered a round trip later; doubling from the first
        // loss would have sent the fourth copy after 1 + 2 + 4 = 7.
        expect(elapsed).toBeGreaterThanOrEqual(3 * rto)
        expect(elapsed).toBeLessThan(4 * rto)
      }),
    ))

  test("a reply is a round-trip sample from the send of the copy it answers", () =>
    withEcho((call, loseNext, rtt) =>
      Effect.gen(function* () {
        loseNext()
        expect(yield* call(0)).toBe(0)
        // The first copy was lost; the reply answers the resend (its own request id), 2 ms after it,
        // not 2 ms after the 250 ms the first copy waited.
        expect(rtt.srttMs("s")).toBeCloseTo(2, 0)
      }),
    ))

  test("replies slower than the timeout raise it: slow requests are not sent again and again", () => {
    // Every fourth request is answered after 30 ms, the others at once (round trips of 2 ms): a
    // server whose batches are sometimes late. With one request id for every copy, a slow reply
    // could not be told from a resend's, was never measured, and the timeout stayed at the 5 ms
    // floor: every slow request went out three or four times.
    const clock = new VirtualClock()
    const root = new Seed(seed)
    const timers = virtualTimers(clock, root.stream("rpc"))
    const network = new SimNetwork({ seed, schedule: (delayMs, fn) => clock.setTimer(delayMs + 1, fn) })
    let served = 0
    let resent = 0
    const scoped: Effect.Effect<void, unknown, Scope.Scope> = Effect.gen(function* () {
      const server = makeRpcNode(yield* makeTransport((d) => network.open("s", d), { timers }), { timers })
      server.handleWith(Echo, (request, _from, reply) => {
        served++
        if (request.n % 4 === 0) timers.setTimer(30, () => reply({ ...request, servedBy: "s" }))
        else reply({ ...request, servedBy: "s" })
      })
      const client = makeRpcNode(yield* makeTransport((d) => network.open("c", d), { timers }), { timers })
      for (let n = 1; n <= 200; n++) expect((yield* client.call("s", Echo, { n, text: "" })).n).toBe(n)
      resent = client.transport.stats.requestsResent
    })
    const exit = runInWorld(clock, root.stream("effect"), Effect.scoped(scoped))
    if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
    // Only the first few slow requests (before the estimate has seen one) go out more than once,
    // and the client counts every copy it sent again.
    expect(served - 200).toBeLessThan(20)
    expect(resent).toBe(served - 200)
  })

  test("with many calls in flight each sample weighs less, so the estimate keeps its memory", () => {
    const one = new RttEstimator({ minRtoMs: 1 })
    const many = new RttEstimator({ minRtoMs: 1 })
    for (const rtt of [one, many]) rtt.sample("s", 10)
    // A round of 64 fast replies arriving together, as 64 concurrent calls get them.
    for (let i = 0; i < 64; i++) {
      one.sample("s", 2)
      many.sample("s", 2, 64)
    }
    // Alone, 64 samples forget the 10 ms round trips; weighed by 64 they move SRTT by about one
    // sample's worth (RFC 6298's 1/8 of the difference).
    expect(one.srttMs("s")).toBeLessThan(2.1)
    expect(many.srttMs("s")).toBeGreaterThan(8.5)
    expect(many.srttMs("s")).toBeLessThan(9.2)
  })
})
