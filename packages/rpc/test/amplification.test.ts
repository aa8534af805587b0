// Proves that a node cannot be used as a reflection amplifier: a request whose source address was
// never proven gets back at most maxReplyFactor times its own size, whatever the method answers,
// while a real caller still gets every reply, paying one extra round trip for its first large one.
import { describe, expect, test } from "bun:test"
import { Context, Effect, Layer, Schema } from "effect"
import {
  AddressProof,
  DEFAULT_MAX_REPLY_FACTOR,
  decodeEnvelope,
  defineMethod,
  ENVELOPE_VERSION,
  type Envelope,
  encodeEnvelope,
  FrameCodec,
  openUdpLink,
  RpcNode,
  type RpcNodeOptions,
  type RpcNodeShape,
  SimNetwork,
  Transport,
} from "../src/index.ts"
import { Echo, runScoped, waitFor } from "./support.ts"

const MiB = 1024 * 1024
const Big = defineMethod("test.big", Schema.Struct({ bytes: Schema.Int }), Schema.Struct({ value: Schema.String }))

const nodeOn = (network: SimNetwork, address: string, options: RpcNodeOptions = {}) =>
  Layer.build(RpcNode.layerWith(options).pipe(Layer.provide(Transport.layerSim(network, address)))).pipe(
    Effect.map((context): RpcNodeShape => Context.get(context, RpcNode)),
  )

const udpNode = (options: RpcNodeOptions = {}) =>
  Layer.build(RpcNode.layerWith(options).pipe(Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0" })))).pipe(
    Effect.map((context): RpcNodeShape => Context.get(context, RpcNode)),
  )

/** A server answering Big with a value of the requested size, counting how often it ran. */
const bigServer = (node: RpcNodeShape) => {
  const served = { big: 0 }
  node.handle(Big, ({ bytes }) => {
    served.big++
    return { value: "x".repeat(bytes) }
  })
  node.handle(Echo, (request) => ({ ...request, servedBy: node.address }))
  return served
}

const codec = new FrameCodec()
const requestDatagram = (id: number, method: string, payload: unknown): Uint8Array =>
  (codec.encode(encodeEnvelope([ENVELOPE_VERSION, 0, id, method, payload]), id) as Uint8Array[])[0] as Uint8Array

/** What a raw address receives: every datagram, with the envelope of whole ones. */
const recorder = () => {
  const received: { readonly bytes: number; readonly envelope: Envelope | undefined }[] = []
  return {
    received,
    bytes: () => received.reduce((sum, d) => sum + d.bytes, 0),
    /** Bytes of the whole datagrams answering request `id`. */
    bytesFor: (id: number) => received.reduce((sum, d) => sum + (d.envelope?.[2] === id ? d.bytes : 0), 0),
    envelopes: () => received.flatMap((d) => (d.envelope === undefined ? [] : [d.envelope])),
    onDatagram: (_from: string, datagram: Uint8Array) => {
      const frame = codec.decode(datagram)
      const envelope = typeof frame === "string" || frame.kind !== "whole" ? undefined : decodeEnvelope(frame.body)
      received.push({ bytes: datagram.length, envelope })
    },
  }
}

describe("replies to an address that has not proven itself", () => {
  test("a small request with a forged source gets back at most the bound, not a 1 MiB value", () =>
    runScoped(
      Effect.gen(function* () {
        const network = new SimNetwork({ seed: 1 })
        const server = yield* nodeOn(network, "server")
        const served = bigServer(server)
        // The victim's address is on the forged request; whatever the server sends lands here.
        const victim = recorder()
        const forger = network.open("victim", victim.onDatagram)
        const request = requestDatagram(1, Big.name, { bytes: MiB })
        forger.send("server", request)
        // A second request from the same address fences the first: its reply comes after anything
        // the first one caused.
        forger.send("server", requestDatagram(2, Echo.name, { n: 2, text: "fence" }))
        expect(yield* Effect.promise(() => waitFor(() => victim.envelopes().some((e) => e[2] === 2)))).toBe(true)
        forger.close()

        expect(served.big).toBe(1)
        const answers = victim.envelopes().filter((e) => e[2] === 1)
        expect(answers.map((e) => e[1])).toEqual([4])
        expect(victim.bytesFor(1)).toBeLessThanOrEqual(DEFAULT_MAX_REPLY_FACTOR * request.length)
        // Nothing else arrived: no fragment of the value.
        expect(victim.received.length).toBe(2)
        expect(server.transport.stats.repliesChallenged).toBe(1)
      }),
    ))

  test("a token proves only the address it was sent to, and a forged one proves nothing", () =>
    runScoped(
      Effect.gen(function* () {
        const network = new SimNetwork({ seed: 2 })
        const server = yield* nodeOn(network, "server")
        bigServer(server)
        const alice = recorder()
        const aliceLink = network.open("alice", alice.onDatagram)
        aliceLink.send("server", requestDatagram(1, Big.name, { bytes: 64 * 1024 }))
        expect(yield* Effect.promise(() => waitFor(() => alice.envelopes().length === 1))).toBe(true)
        const challenge = alice.envelopes()[0]
        if (challenge?.[1] !== 4) throw new Error(`expected a challenge, got ${JSON.stringify(challenge)}`)
        const token = challenge[3]

        // Alice's token echoed from another address, or a made-up token: still only a challenge.
        const mallory = recorder()
        const malloryLink = network.open("mallory", mallory.onDatagram)
        const withToken = (id: number, t: Uint8Array) =>
          (
            codec.encode(
              encodeEnvelope([ENVELOPE_VERSION, 5, id, Big.name, { bytes: 64 * 1024 }, t]),
              id,
            ) as Uint8Array[]
          )[0] as Uint8Array
        malloryLink.send("server", withToken(2, token))
        malloryLink.send("server", withToken(3, new Uint8Array(token.length).fill(7)))
        expect(yield* Effect.promise(() => waitFor(() => mallory.envelopes().length === 2))).toBe(true)
        expect(mallory.envelopes().map((e) => e[1])).toEqual([4, 4])
        expect(mallory.bytes()).toBeLessThan(256)

        // Alice echoes her own token: she gets the whole reply.
        aliceLink.send("server", withToken(4, token))
        expect(yield* Effect.promise(() => waitFor(() => alice.received.length > 2))).toBe(true)
        expect(yield* Effect.promise(() => waitFor(() => alice.bytes() > 64 * 1024))).toBe(true)
        expect(server.transport.stats.addressesProven).toBe(1)
        aliceLink.close()
        malloryLink.close()
      }),
    ))
})

describe("callers", () => {
  test("a client gets a large reply after one challenge, and later ones directly", () =>
    runScoped(
      Effect.gen(function* () {
        const network = new SimNetwork({ seed: 3 })
        const server = yield* nodeOn(network, "server")
        const client = yield* nodeOn(network, "client")
        const served = bigServer(server)
        const first = yield* client.call("server", Big, { bytes: MiB })
        expect(first.value.length).toBe(MiB)
        // The first call ran twice on the server: once answered by the challenge, once for real.
        expect(served.big).toBe(2)
        expect(client.transport.stats.challengesReceived).toBe(1)
        // A fixed resend interval: the adaptive one can resend a call whose 1 MiB reply is merely slow
        // on a loaded machine, and this counts the handler's runs.
        const patient = { attemptTimeoutMs: 5_000 }
        for (let k = 0; k < 5; k++) {
          expect((yield* client.call("server", Big, { bytes: MiB }, patient)).value.length).toBe(MiB)
        }
        expect(served.big).toBe(7)
        expect(client.transport.stats.challengesReceived).toBe(1)
        expect(server.transport.stats.repliesChallenged).toBe(1)
      }),
    ))

  test("small replies and trusted peers are never challenged", () =>
    runScoped(
      Effect.gen(function* () {
        const network = new SimNetwork({ seed: 4 })
        const server = yield* nodeOn(network, "server", { trusted: ["peer"] })
        const client = yield* nodeOn(network, "client")
        const peer = yield* nodeOn(network, "peer")
        bigServer(server)
        for (let n = 0; n < 20; n++) yield* client.call("server", Echo, { n, text: "small" })
        expect((yield* peer.call("server", Big, { bytes: MiB })).value.length).toBe(MiB)
        expect(server.transport.stats.repliesChallenged).toBe(0)
        expect(client.transport.stats.challengesReceived + peer.transport.stats.challengesReceived).toBe(0)
      }),
    ))

  test("over UDP: a 1 MiB reply reaches a new client after one challenge round trip", () =>
    runScoped(
      Effect.gen(function* () {
        const server = yield* udpNode()
        const client = yield* udpNode()
        const served = bigServer(server)
        // A fixed resend interval, as above: on a loaded machine the adaptive one resent a call whose
        // 1 MiB reply was merely slow, and the handler ran 4 times, not 3.
        const patient = { attemptTimeoutMs: 5_000 }
        expect((yield* client.call(server.address, Big, { bytes: MiB }, patient)).value.length).toBe(MiB)
        expect((yield* client.call(server.address, Big, { bytes: MiB }, patient)).value.length).toBe(MiB)
        expect(client.transport.stats.challengesReceived).toBe(1)
        expect(served.big).toBe(3)

        // A raw socket forging requests gets challenges only.
        const victim = recorder()
        const link = yield* Effect.promise(() => openUdpLink({ bind: "127.0.0.1:0" }, victim.onDatagram))
        const request = requestDatagram(9, Big.name, { bytes: MiB })
        link.send(server.address, request)
        link.send(server.address, requestDatagram(10, Echo.name, { n: 10, text: "fence" }))
        expect(yield* Effect.promise(() => waitFor(() => victim.envelopes().some((e) => e[2] === 10)))).toBe(true)
        link.close()
        expect(
          victim
            .envelopes()
            .filter((e) => e[2] === 9)
            .map((e) => e[1]),
        ).toEqual([4])
        expect(victim.bytesFor(9)).toBeLessThanOrEqual(DEFAULT_MAX_REPLY_FACTOR * request.length)
        expect(victim.received.length).toBe(2)
      }),
    ))
})

describe("AddressProof", () => {
  test("a proof expires, tokens last one to two windows, and the table of proven addresses is bounded", () => {
    let now = 1_000_000
    const proof = new AddressProof({ now: () => now, provenForMs: 5_000, maxProvenAddresses: 3 })
    expect(proof.mayReply("a", 100, 300)).toBe(true)
    expect(proof.mayReply("a", 100, 301)).toBe(false)
    expect(proof.prove("a", proof.tokenFor("a"))).toBe(true)
    expect(proof.mayReply("a", 100, 10_000)).toBe(true)
    now += 5_001
    expect(proof.isProven("a")).toBe(false)

    const token = proof.tokenFor("b")
    now += 60_000
    expect(proof.prove("b", token)).toBe(true)
    now += 60_000
    expect(proof.prove("b", token)).toBe(false)

    for (const address of ["c", "d", "e", "f"]) expect(proof.prove(address, proof.tokenFor(address))).toBe(true)
    expect(["c", "d", "e", "f"].map((a) => proof.isProven(a))).toEqual([false, true, true, true])
    proof.trust(["g"])
    expect(proof.isProven("g")).toBe(true)
  })
})
