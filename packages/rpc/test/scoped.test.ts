import { describe, expect, test } from "bun:test"
import { runInWorld, Seed, VirtualClock, virtualTimers } from "@kv/sim"
import { Cause, Context, Effect, Exit, Layer, type Scope } from "effect"
import { RemoteError, RpcNode, type RpcNodeShape, SimNetwork, type Timers, Transport } from "../src/index.ts"
import { Echo, runScoped, waitFor } from "./support.ts"

const nodeOn = (network: SimNetwork, address: string, timers: Timers) =>
  Layer.build(RpcNode.layerWith({ timers }).pipe(Layer.provide(Transport.layerSim(network, address, { timers })))).pipe(
    Effect.map((context): RpcNodeShape => Context.get(context, RpcNode)),
  )

const udpNode = Layer.build(RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0" })))).pipe(
  Effect.map((context): RpcNodeShape => Context.get(context, RpcNode)),
)

const inVirtualTime = (body: (network: SimNetwork, timers: Timers) => Effect.Effect<void, unknown, Scope.Scope>) => {
  const clock = new VirtualClock()
  const root = new Seed(1)
  const timers: Timers = virtualTimers(clock, root.stream("rpc"))
  const network = new SimNetwork({ seed: 1, schedule: (delayMs, fn) => clock.setTimer(delayMs, fn) })
  const exit = runInWorld(clock, root.stream("effect"), Effect.scoped(body(network, timers)))
  if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
}

/** Serves Echo on `node`, answering with `name` so a reply says which scope served it. */
const echoAs = (node: RpcNodeShape, name: string) => node.handle(Echo, (r) => ({ ...r, servedBy: name }))

const errorCode = (exit: Exit.Exit<unknown, unknown>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const error = Cause.squash(exit.cause)
  return error instanceof RemoteError ? `${error.code}: ${error.message}` : String(error)
}

describe("scoped views of one node (several groups on one socket)", () => {
  test("each scope's requests reach its own handler; unqualified ones are refused once two scopes serve a name", () =>
    inVirtualTime((network, timers) =>
      Effect.gen(function* () {
        const shared = yield* nodeOn(network, "host", timers)
        const client = yield* nodeOn(network, "c", timers)
        echoAs(shared.scoped("100"), "g100")
        // One scope so far: a peer that does not qualify still reaches it.
        expect((yield* client.call("host", Echo, { n: 1, text: "" })).servedBy).toBe("g100")
        echoAs(shared.scoped("101"), "g101")
        expect((yield* client.scoped("100").call("host", Echo, { n: 2, text: "" })).servedBy).toBe("g100")
        expect((yield* client.scoped("101").call("host", Echo, { n: 3, text: "" })).servedBy).toBe("g101")
        const plain = yield* Effect.exit(client.call("host", Echo, { n: 4, text: "" }))
        expect(errorCode(plain)).toContain("several scopes")
        // A scope nobody serves here does not fall back to another scope's handler.
        const other = yield* Effect.exit(client.scoped("102").call("host", Echo, { n: 5, text: "" }))
        expect(errorCode(other)).toContain("UnknownMethod")
      }),
    ))

  test("a qualified request reaches a node serving the method unscoped (a group asking a controller)", () =>
    inVirtualTime((network, timers) =>
      Effect.gen(function* () {
        const controller = yield* nodeOn(network, "ctrl", timers)
        const group = yield* nodeOn(network, "host", timers)
        echoAs(controller, "controller")
        expect((yield* group.scoped("100").call("ctrl", Echo, { n: 1, text: "" })).servedBy).toBe("controller")
        // The node's own handler keeps the plain name when a scope registers it later.
        echoAs(controller.scoped("7"), "scope 7")
        expect((yield* group.call("ctrl", Echo, { n: 2, text: "" })).servedBy).toBe("controller")
        expect((yield* group.scoped("7").call("ctrl", Echo, { n: 3, text: "" })).servedBy).toBe("scope 7")
      }),
    ))

  test("one-way messages of co-hosted scopes share a datagram to the same peer and reach their own scope", () =>
    runScoped(
      Effect.gen(function* () {
        const a = yield* udpNode
        const b = yield* udpNode
        const got: string[] = []
        for (const scope of ["100", "101", "102"]) {
          b.scoped(scope).onOneWay("raft", (payload, from) => got.push(`${scope}:${String(payload)} from ${from}`))
        }
        const sentBefore = a.transport.stats.datagramsSent
        for (const scope of ["100", "101", "102"]) a.scoped(scope).sendOneWay(b.address, "raft", `m${scope}`)
        yield* Effect.promise(() => waitFor(() => got.length === 3))
        expect(got.sort()).toEqual([100, 101, 102].map((g) => `${g}:m${g} from ${a.address}`))
        // Sent in one turn to one address: one datagram carries all three groups' messages.
        expect(a.transport.stats.datagramsSent - sentBefore).toBe(1)
        // Unqualified, with three scopes registered: dropped (counted), not given to one of them.
        const droppedBefore = b.transport.stats.drops.malformed
        a.sendOneWay(b.address, "raft", "plain")
        yield* Effect.promise(() => waitFor(() => b.transport.stats.drops.malformed > droppedBefore))
        expect(got).toHaveLength(3)
      }),
    ))

  test("a scope's request observer sees only its own requests", () =>
    inVirtualTime((network, timers) =>
      Effect.gen(function* () {
        const shared = yield* nodeOn(network, "host", timers)
        const client = yield* nodeOn(network, "c", timers)
        const seen: string[] = []
        for (const scope of ["100", "101"]) {
          const view = shared.scoped(scope)
          echoAs(view, scope)
          view.observeRequests((method) => seen.push(`${scope} ${method}`))
        }
        yield* client.scoped("101").call("host", Echo, { n: 1, text: "" })
        expect(seen).toEqual(["101 test.echo"])
      }),
    ))

  test("a scope is a plain name", () => {
    const network = new SimNetwork({ seed: 1 })
    const node = Effect.runSync(
      Effect.scoped(nodeOn(network, "x", virtualTimers(new VirtualClock(), new Seed(1).stream("t")))),
    )
    expect(() => node.scoped("")).toThrow(RangeError)
    expect(() => node.scoped("1@2")).toThrow(RangeError)
  })
})
