import { describe, expect, test } from "bun:test"
import { runInWorld, Seed, VirtualClock, virtualTimers } from "@kv/sim"
import { Cause, Context, Effect, Exit, Fiber, Layer, type Scope } from "effect"
import { RpcNode, type RpcNodeShape, SimNetwork, seedFromEnv, type Timers, Transport } from "../src/index.ts"
import { Echo } from "./support.ts"

const seed = seedFromEnv()
console.log(`rpc sim seed: ${seed} (replay: KV_SEED=${seed} bun test packages/rpc/test/sim.test.ts)`)

const nodeOn = (network: SimNetwork, address: string, timers?: Timers) =>
  Layer.build(
    RpcNode.layerWith(timers === undefined ? {} : { timers }).pipe(
      Layer.provide(Transport.layerSim(network, address, timers === undefined ? {} : { timers })),
    ),
  ).pipe(Effect.map((context): RpcNodeShape => Context.get(context, RpcNode)))

/** Runs `body` in a world of virtual time: its network, timers and sleeps all on one clock. */
const inVirtualTime = (body: (network: SimNetwork, timers: Timers) => Effect.Effect<void, unknown, Scope.Scope>) => {
  const clock = new VirtualClock()
  const root = new Seed(seed)
  const rng = root.stream("rpc")
  const timers: Timers = virtualTimers(clock, rng)
  const network = new SimNetwork({ seed, schedule: (delayMs, fn) => clock.setTimer(delayMs, fn) })
  const exit = runInWorld(clock, root.stream("effect"), Effect.scoped(body(network, timers)))
  if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
}

const echoServer = (node: RpcNodeShape, calls: { n: number }[]) =>
  node.handle(Echo, (request) => {
    calls.push({ n: request.n })
    return { ...request, servedBy: node.address }
  })

describe("request/response over SimNetwork", () => {
  test("completes under 30% datagram loss, with retries", () =>
    inVirtualTime((network, timers) =>
      Effect.gen(function* () {
        const server = yield* nodeOn(network, "s", timers)
        const client = yield* nodeOn(network, "c", timers)
        const calls: { n: number }[] = []
        echoServer(server, calls)
        network.setDropRate(0.3)
        const replies = yield* Effect.forEach(
          Array.from({ length: 100 }, (_, n) => n),
          (n) => client.call("s", Echo, { n, text: `m${n}` }, { attemptTimeoutMs: 30 }),
          { concurrency: 16 },
        )
        expect(replies.map((r) => r.n)).toEqual(Array.from({ length: 100 }, (_, n) => n))
        expect(replies.every((r) => r.servedBy === "s")).toBe(true)
        // Lost replies make the client resend, so the handler saw some requests more than once.
        expect(calls.length).toBeGreaterThan(100)
      }),
    ))

  test("duplicated and reordered datagrams reach the handler and each call completes once", () =>
    inVirtualTime((network, timers) =>
      Effect.gen(function* () {
        const server = yield* nodeOn(network, "s", timers)
        const client = yield* nodeOn(network, "c", timers)
        const calls: { n: number }[] = []
        echoServer(server, calls)
        network.setDuplicateRate(0.5)
        network.setMaxDelay(20)
        const replies = yield* Effect.forEach(
          Array.from({ length: 50 }, (_, n) => n),
          (n) => client.call("s", Echo, { n, text: "x" }),
          { concurrency: "unbounded" },
        )
        expect(replies.map((r) => r.n)).toEqual(Array.from({ length: 50 }, (_, n) => n))
        expect(calls.length).toBeGreaterThan(50)
      }),
    ))

  test("a partitioned server times out with a typed Timeout, and answers once healed", () =>
    inVirtualTime((network, timers) =>
      Effect.gen(function* () {
        const server = yield* nodeOn(network, "s", timers)
        const client = yield* nodeOn(network, "c", timers)
        echoServer(server, [])
        network.partition([["s"], ["c"]])
        const failed = yield* Effect.flip(
          client.call("s", Echo, { n: 1, text: "x" }, { attemptTimeoutMs: 20, deadlineMs: 200 }),
        )
        expect(failed._tag).toBe("Timeout")
        network.heal()
        const ok = yield* client.call("s", Echo, { n: 2, text: "y" })
        expect(ok.n).toBe(2)
      }),
    ))

  test("a disconnected node neither sends nor receives, and datagrams in flight to it are lost", () =>
    inVirtualTime((network, timers) =>
      Effect.gen(function* () {
        const a = yield* nodeOn(network, "a", timers)
        const b = yield* nodeOn(network, "b", timers)
        const got: unknown[] = []
        b.onOneWay("raft", (payload) => got.push(payload))
        network.setMaxDelay(30)
        a.sendOneWay("b", "raft", 1)
        network.disconnect("b")
        a.sendOneWay("b", "raft", 2)
        yield* Effect.sleep("60 millis")
        expect(got).toEqual([])
        network.connect("b")
        a.sendOneWay("b", "raft", 3)
        yield* Effect.sleep("60 millis")
        expect(got).toEqual([3])
      }),
    ))

  test("the lab's unreliable model loses about 10%; long reordering delays replies (only) by 200–2200 ms", () =>
    inVirtualTime((network, timers) =>
      Effect.gen(function* () {
        const a = yield* nodeOn(network, "a", timers)
        const b = yield* nodeOn(network, "b", timers)
        const arrivals: number[] = []
        const start = timers.now()
        b.onOneWay("m", () => arrivals.push(timers.now() - start))
        network.setUnreliable(true)
        for (let i = 0; i < 1000; i++) a.sendOneWay("b", "m", i)
        yield* Effect.sleep("150 millis")
        expect(arrivals.length).toBeGreaterThan(820)
        expect(arrivals.length).toBeLessThan(960)
        expect(Math.max(...arrivals)).toBeLessThan(140)
        network.setUnreliable(false)
        network.setLongReordering(true)
        // Requests are not reordered...
        arrivals.length = 0
        for (let i = 0; i < 300; i++) a.sendOneWay("b", "m", i)
        yield* Effect.sleep("60 millis")
        expect(arrivals.length).toBe(300)
        // ...replies are: about a third arrive at once, the rest wait at least 200 ms. On a one-way
        // channel, replies are what the channel's classifier says.
        network.classifyReplies("m", (payload) => typeof payload === "number" && payload >= 1000)
        arrivals.length = 0
        for (let i = 0; i < 300; i++) a.sendOneWay("b", "m", i)
        yield* Effect.sleep("60 millis")
        expect(arrivals.length).toBe(300)
        arrivals.length = 0
        for (let i = 0; i < 300; i++) a.sendOneWay("b", "m", 1000 + i)
        yield* Effect.sleep("100 millis")
        expect(arrivals.length).toBeGreaterThan(50)
        expect(arrivals.length).toBeLessThan(160)
      }),
    ))

  test(
    "long reordering holds back answers to calls, whole or fragmented, and never the requests",
    () =>
      inVirtualTime((network, timers) =>
        Effect.gen(function* () {
          const server = yield* nodeOn(network, "s", timers)
          const client = yield* nodeOn(network, "c", timers)
          const calls: { n: number }[] = []
          echoServer(server, calls)
          network.setLongReordering(true)
          // 100 kB each way: the answer leaves as two fragments, each delayed on its own.
          const sizes = [...Array.from({ length: 40 }, () => 3), ...Array.from({ length: 20 }, () => 100_000)]
          const done = { small: 0, large: 0 }
          const all = yield* Effect.forkChild(
            Effect.forEach(
              sizes,
              (size, n) =>
                client
                  .call("s", Echo, { n, text: "x".repeat(size) }, { attemptTimeoutMs: 5_000, deadlineMs: 8_000 })
                  .pipe(Effect.tap(() => Effect.sync(() => done[size > 3 ? "large" : "small"]++))),
              { concurrency: "unbounded" },
            ),
          )
          yield* Effect.sleep("150 millis")
          expect(calls.length).toBe(sizes.length)
          // About a third of the small answers arrive at once, and a ninth of the large ones.
          expect(done.small).toBeGreaterThan(3)
          expect(done.small).toBeLessThan(30)
          expect(done.large).toBeLessThan(12)
          const replies = yield* Fiber.join(all)
          expect(replies.map((r) => r.n)).toEqual(sizes.map((_, n) => n))
          expect(calls.length).toBe(sizes.length)
        }),
      ),
    15_000,
  )

  test("counts messages and bytes per node", () =>
    inVirtualTime((network, timers) =>
      Effect.gen(function* () {
        const server = yield* nodeOn(network, "s", timers)
        const client = yield* nodeOn(network, "c", timers)
        echoServer(server, [])
        for (let n = 0; n < 10; n++) yield* client.call("s", Echo, { n, text: "abc" })
        expect(network.countsOf("c").datagramsSent).toBe(10)
        expect(network.countsOf("s").datagramsSent).toBe(10)
        expect(network.countsOf("s").datagramsReceived).toBe(10)
        expect(network.countsOf("c").bytesSent).toBeGreaterThan(10 * 10)
        expect(client.transport.stats.messagesSent).toBe(10)
        expect(server.transport.stats.messagesReceived).toBe(10)
      }),
    ))

  test("the same seed makes the same loss decisions", () => {
    const trace = (s: number) => {
      const network = new SimNetwork({ seed: s, schedule: (_ms, fn) => fn() })
      const got: number[] = []
      const a = network.open("a", () => {})
      network.open("b", (_from, d) => got.push(d[0]!))
      network.setUnreliable(true)
      network.setDuplicateRate(0.2)
      for (let i = 0; i < 200; i++) a.send("b", new Uint8Array([i]))
      return got.join(",")
    }
    expect(trace(seed)).toBe(trace(seed))
    expect(trace(seed)).not.toBe(trace(seed + 1))
  })
})
