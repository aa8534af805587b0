/**
 * Proves that a real kvraft group runs whole in the seeded world: three servers (Raft shell, RSM,
 * sessions, RPC) and a client on the world's virtual clock, network and randomness, so minutes of
 * virtual time pass in wall milliseconds and one seed gives one run.
 */
import { describe, expect, test } from "bun:test"
import { type NodeId, Storage } from "@kv/raft"
import { RpcNode, SimNetwork, type Timers, Transport } from "@kv/rpc"
import { runInWorld, Seed, seedFromEnv, simLayer, VirtualClock } from "@kv/sim"
import { Context, Effect, Exit, Layer } from "effect"
import { makeKvClient, makeKvServer } from "../src/index.ts"

const FILE = "packages/kvraft/test/world.test.ts"

/** One run: a group of three, a client writing and reading; what it saw and where the clock ended. */
const run = (seed: number) => {
  const clock = new VirtualClock()
  const world = new Seed(seed)
  const rpcRandom = world.stream("rpc")
  const timers: Timers = {
    now: () => clock.now(),
    setTimer: (delayMs, fn) => clock.setTimer(delayMs, fn),
    clearTimer: (handle) => {
      clock.cancelTimer(handle as number)
    },
    random: () => rpcRandom.nextDouble(),
  }
  const network = new SimNetwork({ seed, schedule: (delayMs, fn) => clock.setTimer(delayMs, fn) })
  network.setMaxDelay(5)
  const peers: Record<number, string> = { 1: "kv-1", 2: "kv-2", 3: "kv-3" }
  const disks = new Map()
  const node = (address: string) =>
    RpcNode.layerWith({ timers }).pipe(Layer.provide(Transport.layerSim(network, address)))

  const program = Effect.gen(function* () {
    for (const [id, address] of Object.entries(peers)) {
      // Built in the run's scope: the server's node and disk live as long as the run.
      const context = yield* Layer.build(Layer.merge(node(address), Storage.layerMemory(disks)))
      yield* makeKvServer({ id: Number(id) as NodeId, peers, seed: seed + Number(id), tickMs: 10 }).pipe(
        Effect.provideContext(context),
      )
    }
    const rpc = Context.get(yield* Layer.build(node("client")), RpcNode)
    const kv = yield* makeKvClient(rpc, { servers: Object.values(peers), deadlineMs: 30_000 })
    for (let i = 0; i < 50; i++) yield* kv.append("k", `${i},`)
    return yield* kv.get("k")
  }).pipe(Effect.scoped, Effect.provide(simLayer(clock, world.stream("effect"))))

  const started = performance.now()
  const exit = runInWorld(clock, world.stream("effect"), program, { untilMs: 600_000 })
  return { exit, virtualMs: clock.now(), wallMs: performance.now() - started }
}

describe("kvraft in the seeded world", () => {
  test("a group of three elects, replicates and answers a client, all in virtual time", () => {
    const seed = seedFromEnv().value
    console.log(`world seed ${seed} (replay: KV_SEED=${seed} bun test ${FILE})`)
    const first = run(seed)
    if (Exit.isFailure(first.exit)) throw new Error(`run failed: ${String(first.exit.cause)}`)
    expect(first.exit.value).toBe(Array.from({ length: 50 }, (_, i) => `${i},`).join(""))
    console.log(`${first.virtualMs} ms of virtual time in ${first.wallMs.toFixed(0)} ms`)
    const again = run(seed)
    expect(again.virtualMs).toBe(first.virtualMs)
  })
})
