/**
 * Proves that an RpcNode's calls run on whatever clock it is given: with the world's virtual clock
 * for timers and the network's delays, retries, backoff and deadlines happen in virtual time, and
 * the same seed gives the same run.
 */
import { describe, expect, test } from "bun:test"
import { Seed, VirtualClock, virtualTimers } from "@kv/sim"
import { Context, Effect, Exit, Layer, Schema, Scope } from "effect"
import { defineMethod, RpcNode, type RpcNodeShape, SimNetwork, type Timers, Transport } from "../src/index.ts"

const Echo = defineMethod("echo", Schema.Struct({ n: Schema.Number }), Schema.Struct({ n: Schema.Number }))

/** A world of one network and two nodes, every timer and delay on `clock`. */
const world = (seed: number) => {
  const clock = new VirtualClock()
  const rng = new Seed(seed).stream("rpc")
  const timers: Timers = virtualTimers(clock, rng)
  const network = new SimNetwork({ seed, schedule: (delayMs, fn) => clock.setTimer(delayMs, fn) })
  const scope = Effect.runSync(Scope.make())
  const node = (address: string): Promise<RpcNodeShape> =>
    Effect.runPromise(
      Layer.buildWithScope(
        RpcNode.layerWith({ timers }).pipe(Layer.provide(Transport.layerSim(network, address))),
        scope,
      ).pipe(Effect.map((context) => Context.get(context, RpcNode))),
    )
  return { clock, network, node }
}

/** Runs `effect` to its end by stepping the virtual clock; no wall time is waited for. */
const runVirtually = <A, E>(clock: VirtualClock, effect: Effect.Effect<A, E>): Exit.Exit<A, E> => {
  let exit: Exit.Exit<A, E> | undefined
  Effect.runCallback(effect, { onExit: (e) => (exit = e) })
  while (exit === undefined && clock.step()) {}
  if (exit === undefined) throw new Error("the call never ended")
  return exit
}

describe("RpcNode in virtual time", () => {
  test("a call to a silent server times out at its deadline in virtual time, after backing off", async () => {
    const { clock, node } = world(1)
    const client = await node("client")
    // It takes every request and never answers.
    ;(await node("silent")).handleWith(Echo, () => {})
    const started = performance.now()
    const exit = runVirtually(
      clock,
      client.call("silent", Echo, { n: 1 }, { attemptTimeoutMs: 100, deadlineMs: 60_000 }),
    )
    expect(Exit.isFailure(exit) && exit.cause.toString()).toContain("Timeout")
    expect(clock.now()).toBe(60_000)
    expect(performance.now() - started).toBeLessThan(1_000)
  })

  test("a lossy network delays an answer by retries, and one seed gives one outcome", async () => {
    const run = async (seed: number) => {
      const { clock, network, node } = world(seed)
      network.setDropRate(0.5)
      network.setMaxDelay(20)
      const server = await node("server")
      server.handle(Echo, (request) => ({ n: request.n + 1 }))
      const client = await node("client")
      const exit = runVirtually(
        clock,
        client.call("server", Echo, { n: 41 }, { attemptTimeoutMs: 100, deadlineMs: 30_000 }),
      )
      return { ok: Exit.isSuccess(exit) ? exit.value.n : undefined, at: clock.now() }
    }
    const first = await run(7)
    expect(first.ok).toBe(42)
    expect(await run(7)).toEqual(first)
  })
})
