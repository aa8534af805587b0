import { describe, expect, test } from "bun:test"
import { Context, Effect, Layer } from "effect"
import {
  encodeEnvelope,
  makeRpcNode,
  makeTransport,
  openUdpLink,
  RpcNode,
  type RpcNodeShape,
  SeededRandom,
  seedFromEnv,
  Transport,
  type UdpBackend,
  type UdpTransportOptions,
} from "../src/index.ts"
import { Blob, checksum, Echo, runScoped, waitFor } from "./support.ts"

const seed = seedFromEnv()
console.log(`rpc udp seed: ${seed} (replay: KV_SEED=${seed} bun test packages/rpc/test/udp.test.ts)`)

const udpNode = (options: Partial<UdpTransportOptions> = {}) =>
  Layer.build(RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0", ...options })))).pipe(
    Effect.map((context): RpcNodeShape => Context.get(context, RpcNode)),
  )

describe.each(["node-dgram", "bun"] as UdpBackend[])("real UDP on 127.0.0.1 (%s)", (backend) => {
  test("request/response round trip on ephemeral ports", () =>
    runScoped(
      Effect.gen(function* () {
        const server = yield* udpNode({ backend })
        const client = yield* udpNode({ backend })
        expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/)
        server.handle(Echo, (r) => ({ ...r, servedBy: server.address }))
        const reply = yield* client.call(server.address, Echo, { n: 42, text: "hello" })
        expect(reply).toEqual({ n: 42, text: "hello", servedBy: server.address })
      }),
    ))

  test("a crashed peer's ICMP errors do not make sends to live peers fail", () =>
    runScoped(
      Effect.gen(function* () {
        const live = yield* udpNode({ backend })
        const sender = yield* udpNode({ backend })
        const dead = yield* Effect.scoped(Effect.map(udpNode({ backend }), (s) => s.address))
        const got: unknown[] = []
        live.onOneWay("m", (p) => got.push(p))
        for (let i = 0; i < 50; i++) {
          sender.sendOneWay(dead, "m", i)
          sender.sendOneWay(live.address, "m", i)
          yield* Effect.sleep("2 millis")
        }
        yield* Effect.sleep("50 millis")
        expect(got.length).toBe(50)
      }),
    ))
})

describe("real UDP on 127.0.0.1", () => {
  // Only node:dgram: Bun.udpSocket cannot enlarge its ~208 KiB receive buffer, so a 4 MiB burst of
  // fragments overflows it (measured in BENCHMARKS.md); that is why node:dgram is the default backend.
  test("a 4 MiB message crosses real UDP intact", () =>
    runScoped(
      Effect.gen(function* () {
        const server = yield* udpNode()
        const client = yield* udpNode()
        server.handle(Blob, (r) => ({ length: r.bytes.length, checksum: checksum(r.bytes) }))
        const random = new SeededRandom(seed)
        const bytes = new Uint8Array(4 * 1024 * 1024)
        for (let i = 0; i < bytes.length; i++) bytes[i] = random.int(256)
        const reply = yield* client.call(server.address, Blob, { bytes }, { attemptTimeoutMs: 2_000 })
        expect(reply).toEqual({ length: bytes.length, checksum: checksum(bytes) })
        expect(client.transport.stats.datagramsSent).toBeGreaterThan(60)
      }),
    ))

  test(
    "request/response completes under 30% loss",
    () =>
      runScoped(
        Effect.gen(function* () {
          const random = new SeededRandom(seed)
          // Loss is injected at the server's receive side so both requests and (via resends) replies suffer.
          const lossyServer = yield* makeTransport((onDatagram) =>
            openUdpLink({ bind: "127.0.0.1:0" }, (from, d) => {
              if (!random.chance(0.3)) onDatagram(from, d)
            }),
          )
          const server = makeRpcNode(lossyServer)
          const lossyClient = yield* makeTransport((onDatagram) =>
            openUdpLink({ bind: "127.0.0.1:0" }, (from, d) => {
              if (!random.chance(0.3)) onDatagram(from, d)
            }),
          )
          const client = makeRpcNode(lossyClient)
          let handled = 0
          server.handle(Echo, (r) => {
            handled++
            return { ...r, servedBy: "lossy" }
          })
          const replies = yield* Effect.forEach(
            Array.from({ length: 200 }, (_, n) => n),
            (n) => client.call(server.address, Echo, { n, text: "x" }, { attemptTimeoutMs: 20 }),
            { concurrency: 32 },
          )
          expect(replies.map((r) => r.n)).toEqual(Array.from({ length: 200 }, (_, n) => n))
          expect(handled).toBeGreaterThan(200)
        }),
      ),
    30_000,
  )

  test("datagrams under a wrong key or none are rejected and counted; the right key is served", () =>
    runScoped(
      Effect.gen(function* () {
        const server = yield* udpNode({ key: "cluster-key" })
        const good = yield* udpNode({ key: "cluster-key" })
        const forger = yield* udpNode({ key: "wrong-key" })
        const plain = yield* udpNode()
        server.handle(Echo, (r) => ({ ...r, servedBy: "s" }))
        expect((yield* good.call(server.address, Echo, { n: 1, text: "ok" })).n).toBe(1)
        const forged = yield* Effect.flip(
          forger.call(server.address, Echo, { n: 2, text: "no" }, { attemptTimeoutMs: 20, deadlineMs: 150 }),
        )
        const unsigned = yield* Effect.flip(
          plain.call(server.address, Echo, { n: 3, text: "no" }, { attemptTimeoutMs: 20, deadlineMs: 150 }),
        )
        expect(forged._tag).toBe("Timeout")
        expect(unsigned._tag).toBe("Timeout")
        expect(server.transport.stats.drops.unauthenticated).toBeGreaterThanOrEqual(2)
        expect(server.transport.stats.messagesReceived).toBe(1)
      }),
    ))

  test(
    "fuzz: 100,000 random and mutated datagrams; the server keeps serving and counts every bad one",
    () =>
      runScoped(
        Effect.gen(function* () {
          const random = new SeededRandom(seed)
          const keyed = yield* udpNode({ key: "fuzz-key" })
          const open = yield* udpNode()
          for (const server of [keyed, open]) server.handle(Echo, (r) => ({ ...r, servedBy: "s" }))
          const valid = encodeEnvelope([1, 0, 1, Echo.name, { n: 1, text: "seed" }])
          const validFramed = new Uint8Array([1, 0, ...valid])
          const attacker = yield* makeTransport((onDatagram) => openUdpLink({ bind: "127.0.0.1:0" }, onDatagram))
          const link = (attacker as unknown as { link: { send(to: string, d: Uint8Array): boolean } }).link
          const mutate = (): Uint8Array => {
            const kind = random.int(4)
            if (kind === 0) {
              const d = new Uint8Array(random.int(1400))
              for (let i = 0; i < d.length; i++) d[i] = random.int(256)
              return d
            }
            const d = validFramed.slice(0, kind === 1 ? random.int(validFramed.length + 1) : validFramed.length)
            const flips = 1 + random.int(8)
            for (let f = 0; f < flips && d.length > 0; f++) d[random.int(d.length)] = random.int(256)
            if (kind === 3 && d.length > 1) d[1] = 1 // claim to be a fragment
            return d
          }
          const total = 100_000
          const perServer = total / 2
          for (const server of [keyed, open]) {
            const before = server.transport.stats.datagramsReceived
            for (let sent = 0; sent < perServer; ) {
              // Paced in bursts that fit the socket buffer, so the kernel drops none and counts are exact.
              for (let i = 0; i < 500; i++, sent++) link.send(server.address, mutate())
              const target = before + sent
              const arrived = yield* Effect.promise(() =>
                waitFor(() => server.transport.stats.datagramsReceived >= target),
              )
              expect(arrived).toBe(true)
            }
            expect(server.transport.stats.datagramsReceived - before).toBe(perServer)
          }
          // Keyed: nothing forged gets through, and every datagram is counted as a drop by reason.
          expect(keyed.transport.stats.totalDrops()).toBe(perServer)
          expect(keyed.transport.stats.messagesReceived).toBe(0)
          // Unkeyed: every datagram is either dropped with a reason or was a well-formed message.
          const s = open.transport.stats
          yield* Effect.sleep("50 millis")
          expect(s.drops.malformed).toBeGreaterThan(perServer / 2)
          expect(s.totalDrops() + s.messagesReceived).toBeGreaterThanOrEqual(perServer)
          // Both still serve real clients afterwards.
          const client = yield* udpNode({ key: "fuzz-key" })
          expect((yield* client.call(keyed.address, Echo, { n: 7, text: "after" })).n).toBe(7)
          const plainClient = yield* udpNode()
          expect((yield* plainClient.call(open.address, Echo, { n: 8, text: "after" })).n).toBe(8)
        }),
      ),
    60_000,
  )

  test("binding a port in use fails with a clear TransportError", () =>
    runScoped(
      Effect.gen(function* () {
        const first = yield* udpNode()
        const error = yield* Effect.flip(udpNode({ bind: first.address }))
        expect(error._tag).toBe("TransportError")
        expect(error.message).toContain(first.address)
      }),
    ))

  test("a request to a stopped server times out instead of crashing the client", () =>
    runScoped(
      Effect.gen(function* () {
        const client = yield* udpNode({ backend: "bun" })
        const address = yield* Effect.scoped(Effect.map(udpNode({ backend: "bun" }), (s) => s.address))
        const error = yield* Effect.flip(
          client.call(address, Echo, { n: 1, text: "x" }, { attemptTimeoutMs: 20, deadlineMs: 120 }),
        )
        expect(error._tag).toBe("Timeout")
      }),
    ))
})
