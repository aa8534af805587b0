import { describe, expect, test } from "bun:test"
import { runInWorld, Seed, VirtualClock, virtualTimers } from "@kv/sim"
import { Cause, Effect, Exit, type Scope } from "effect"
import {
  makeTransport,
  type NetFaults,
  netFaultsFromEnv,
  SimNetwork,
  seedFromEnv,
  type Timers,
  type TransportShape,
} from "../src/index.ts"

const seed = seedFromEnv()
console.log(`rpc loss seed: ${seed} (replay: KV_SEED=${seed} bun test packages/rpc/test/loss.test.ts)`)

/** Sends `count` one-way messages from a faulty transport to a clean one, in virtual time. */
const sendThrough = (faults: NetFaults, count: number, runSeed: number) => {
  const clock = new VirtualClock()
  const root = new Seed(runSeed)
  const timers: Timers = virtualTimers(clock, root.stream("rpc"))
  const network = new SimNetwork({ seed: runSeed, schedule: (delayMs, fn) => clock.setTimer(delayMs, fn) })
  const received: number[] = []
  let sender: TransportShape | undefined
  const body: Effect.Effect<void, unknown, Scope.Scope> = Effect.gen(function* () {
    const receiver = yield* makeTransport((onDatagram) => network.open("b", onDatagram), { timers })
    receiver.onMessage((_from, message) => received.push(message[0] ?? -1))
    sender = yield* makeTransport((onDatagram) => network.open("a", onDatagram), { timers, faults })
    for (let i = 0; i < count; i++) sender.send("b", Uint8Array.of(i % 256))
    yield* Effect.sleep("10 millis")
  })
  const exit = runInWorld(clock, root.stream("effect"), Effect.scoped(body))
  if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
  return { received, stats: sender!.stats.snapshot() }
}

describe("fault injection in the transport", () => {
  test("a transport told to lose 20% of its datagrams loses about that many, and counts each", () => {
    const { received, stats } = sendThrough({ lossRate: 0.2, dupRate: 0 }, 2000, seed)
    expect(stats.injectedLosses).toBeGreaterThan(300)
    expect(stats.injectedLosses).toBeLessThan(500)
    expect(received.length).toBe(2000 - stats.injectedLosses)
    // A lost datagram left the sender as far as it can tell.
    expect(stats.datagramsSent).toBe(2000)
  })

  test("a transport told to duplicate 30% of its datagrams delivers those twice, and counts each", () => {
    const { received, stats } = sendThrough({ lossRate: 0, dupRate: 0.3 }, 2000, seed)
    expect(stats.injectedDuplicates).toBeGreaterThan(500)
    expect(stats.injectedDuplicates).toBeLessThan(700)
    expect(received.length).toBe(2000 + stats.injectedDuplicates)
  })

  test("the same seed loses and duplicates the same datagrams", () => {
    const faults = { lossRate: 0.1, dupRate: 0.1 }
    const first = sendThrough(faults, 500, seed)
    const again = sendThrough(faults, 500, seed)
    expect(again.received).toEqual(first.received)
    expect(again.stats).toEqual(first.stats)
  })

  test("without faults nothing is lost or duplicated", () => {
    const { received, stats } = sendThrough({ lossRate: 0, dupRate: 0 }, 300, seed)
    expect(received.length).toBe(300)
    expect(stats.injectedLosses + stats.injectedDuplicates).toBe(0)
  })

  test("KV_NET_LOSS and KV_NET_DUP are read as fractions, and a malformed one is refused", () => {
    expect(netFaultsFromEnv({})).toEqual({ lossRate: 0, dupRate: 0 })
    expect(netFaultsFromEnv({ KV_NET_LOSS: "0.01", KV_NET_DUP: "0.05" })).toEqual({ lossRate: 0.01, dupRate: 0.05 })
    expect(() => netFaultsFromEnv({ KV_NET_LOSS: "1%" })).toThrow(/KV_NET_LOSS/)
    expect(() => netFaultsFromEnv({ KV_NET_DUP: "1" })).toThrow(/KV_NET_DUP/)
  })
})
