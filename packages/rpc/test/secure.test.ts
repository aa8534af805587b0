/**
 * Proves that with keys, traffic is unreadable and unforgeable on the wire: values never appear in
 * a datagram, tampered or wrong-key datagrams are dropped and counted, nonces never repeat (also
 * across a restart), two keys work during a rotation, and a client key gets only what its role allows.
 */
import { describe, expect, test } from "bun:test"
import { Context, Effect, Layer, Schema } from "effect"
import {
  defineMethod,
  FrameCodec,
  type KeyGrant,
  type Link,
  makeRpcNode,
  makeTransport,
  NonceSource,
  openUdpLink,
  RpcNode,
  type RpcNodeShape,
  SEAL_BYTES,
  Transport,
  type UdpTransportOptions,
} from "../src/index.ts"
import { Echo, runScoped, waitFor } from "./support.ts"

const udpNode = (options: Partial<UdpTransportOptions> = {}) =>
  Layer.build(RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0", ...options })))).pipe(
    Effect.map((context): RpcNodeShape => Context.get(context, RpcNode)),
  )

/** A node whose every outgoing datagram is also recorded, as a wiretap on its link would see it. */
const tappedNode = (options: Partial<UdpTransportOptions>, tap: Uint8Array[]) =>
  Effect.map(
    makeTransport(
      async (onDatagram): Promise<Link> => {
        const link = await openUdpLink({ bind: "127.0.0.1:0" }, onDatagram)
        return {
          address: link.address,
          send(to, datagram) {
            tap.push(datagram.slice())
            return link.send(to, datagram)
          },
          close: () => link.close(),
        }
      },
      { coalesce: true, ...options },
    ),
    (transport) => makeRpcNode(transport),
  )

const contains = (haystack: Uint8Array, needle: Uint8Array): boolean => {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return true
  }
  return false
}

const fail = { attemptTimeoutMs: 20, deadlineMs: 200 }

describe("encrypted datagrams", () => {
  test("a datagram captured on the wire does not contain the plaintext value, nor does its reply", () =>
    runScoped(
      Effect.gen(function* () {
        const secret = "the value nobody else may read"
        const plainBytes = new TextEncoder().encode(secret)
        const tapRequests: Uint8Array[] = []
        const tapReplies: Uint8Array[] = []
        const server = yield* tappedNode({ key: "cluster-key" }, tapReplies)
        const client = yield* tappedNode({ key: "cluster-key" }, tapRequests)
        server.handle(Echo, (r) => ({ ...r, servedBy: "s" }))
        const reply = yield* client.call(server.address, Echo, { n: 1, text: secret })
        expect(reply.text).toBe(secret)
        // Long enough to fragment, too: fragments are sealed one by one.
        const long = secret.repeat(4000)
        expect((yield* client.call(server.address, Echo, { n: 2, text: long })).text).toBe(long)
        expect(tapRequests.length).toBeGreaterThan(2)
        expect(tapReplies.length).toBeGreaterThan(2)
        for (const datagram of [...tapRequests, ...tapReplies]) {
          expect(contains(datagram, plainBytes)).toBe(false)
          expect(contains(datagram, new TextEncoder().encode("test.echo"))).toBe(false)
        }
        // The same plaintext without a key is visible: the check above would see it.
        const open = new FrameCodec().encode(plainBytes, 1)![0]!
        expect(contains(open, plainBytes)).toBe(true)
      }),
    ))

  test("a tampered, replayed-under-another-key or wrong-key datagram is dropped and counted", () =>
    runScoped(
      Effect.gen(function* () {
        const tap: Uint8Array[] = []
        const server = yield* udpNode({ key: "cluster-key" })
        const client = yield* tappedNode({ key: "cluster-key" }, tap)
        const wrongKey = yield* udpNode({ key: "another cluster's key" })
        const unkeyed = yield* udpNode()
        let served = 0
        server.handle(Echo, (r) => {
          served++
          return { ...r, servedBy: "s" }
        })
        yield* client.call(server.address, Echo, { n: 1, text: "once" })
        expect(served).toBe(1)
        const [captured] = tap
        const raw = yield* Effect.promise(() => openUdpLink({ bind: "127.0.0.1:0" }, () => {}))
        yield* Effect.addFinalizer(() => Effect.sync(() => raw.close()))
        // Every byte flipped in turn: header, key id, nonce, ciphertext and tag are all covered.
        for (let i = 0; i < captured!.length; i++) {
          const forged = captured!.slice()
          forged[i]! ^= 1 << (i % 8)
          raw.send(server.address, forged)
        }
        // Cut short or padded.
        raw.send(server.address, captured!.subarray(0, captured!.length - 1))
        raw.send(server.address, new Uint8Array([...captured!, 0]))
        const bad = captured!.length + 2
        yield* Effect.promise(() =>
          waitFor(() => server.transport.stats.drops.unauthenticated + server.transport.stats.drops.malformed >= bad),
        )
        expect(served).toBe(1)
        const before = server.transport.stats.drops.unauthenticated
        expect((yield* Effect.flip(wrongKey.call(server.address, Echo, { n: 2, text: "no" }, fail)))._tag).toBe(
          "Timeout",
        )
        expect((yield* Effect.flip(unkeyed.call(server.address, Echo, { n: 3, text: "no" }, fail)))._tag).toBe(
          "Timeout",
        )
        expect(server.transport.stats.drops.unauthenticated).toBeGreaterThanOrEqual(before + 2)
        expect(served).toBe(1)
      }),
    ))

  test("nonces never repeat within a process, and a restarted process draws new ones", () => {
    const seen = new Set<string>()
    const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")
    for (let life = 0; life < 20; life++) {
      const nonces = new NonceSource()
      for (let i = 0; i < 5_000; i++) {
        const nonce = hex(nonces.next())
        expect(seen.has(nonce)).toBe(false)
        seen.add(nonce)
      }
    }
    // And on the wire: the same message sealed twice, by one codec or a restarted one, differs.
    const message = new Uint8Array(64)
    const first = new FrameCodec({ key: "k" })
    const a = first.encode(message, 1)![0]!
    const b = first.encode(message, 1)![0]!
    const c = new FrameCodec({ key: "k" }).encode(message, 1)![0]!
    const nonceOf = (d: Uint8Array) => hex(d.subarray(5, 17))
    expect(new Set([nonceOf(a), nonceOf(b), nonceOf(c)]).size).toBe(3)
    expect(a.length).toBe(2 + message.length + SEAL_BYTES)
  })
})

describe("key rotation", () => {
  test("during a rotation nodes with the old, both and the new key talk; the old key alone is refused after it", () =>
    runScoped(
      Effect.gen(function* () {
        const server = (secret: string): KeyGrant => ({ secret, role: "server" })
        const old = server("old key")
        const next = server("new key")
        // Step 1: the new key accepted everywhere, the old one still sent. Step 2: the new one sent.
        const oldOnly = yield* udpNode({ keys: [old] })
        const step1 = yield* udpNode({ keys: [old, next] })
        const step2 = yield* udpNode({ keys: [next, old] })
        const newOnly = yield* udpNode({ keys: [next] })
        for (const node of [oldOnly, step1, step2, newOnly])
          node.handle(Echo, (r) => ({ ...r, servedBy: node.address }))
        const pairs: [RpcNodeShape, RpcNodeShape][] = [
          [oldOnly, step1],
          [step1, oldOnly],
          [step1, step2],
          [step2, step1],
          [step2, newOnly],
          [newOnly, step2],
        ]
        for (const [from, to] of pairs) {
          expect((yield* from.call(to.address, Echo, { n: 1, text: "x" })).servedBy).toBe(to.address)
        }
        // Step 3 done: a node still on the old key alone is a stranger.
        expect((yield* Effect.flip(oldOnly.call(newOnly.address, Echo, { n: 2, text: "x" }, fail)))._tag).toBe(
          "Timeout",
        )
      }),
    ))
})

const Put = defineMethod("test.put", Schema.Struct({ key: Schema.String }), Schema.Struct({ ok: Schema.Boolean }))
const Admin = defineMethod("test.admin", Schema.Struct({}), Schema.Struct({ ok: Schema.Boolean }))

describe("roles", () => {
  test("a client key gets what its role allows; more is PermissionDenied, counted; its one-way messages are dropped", () =>
    runScoped(
      Effect.gen(function* () {
        const keys: KeyGrant[] = [
          { secret: "server key", role: "server" },
          { secret: "reader key", role: "read-only" },
          { secret: "writer key", role: "read-write" },
          { secret: "admin key", role: "admin" },
        ]
        const server = yield* udpNode({ keys })
        const peer = yield* udpNode({ key: "server key" })
        const reader = yield* udpNode({ key: "reader key" })
        const writer = yield* udpNode({ key: "writer key" })
        const admin = yield* udpNode({ key: "admin key" })
        server.handle(Echo, (r) => ({ ...r, servedBy: "s" }))
        server.handle(Put, () => ({ ok: true }))
        server.handle(Admin, () => ({ ok: true }))
        server.allow("read-only", [Echo])
        server.allow("read-write", [Put])
        server.allow("admin", [Admin.name])
        const raft: unknown[] = []
        server.onOneWay("raft", (payload) => raft.push(payload))

        expect((yield* reader.call(server.address, Echo, { n: 1, text: "read" })).servedBy).toBe("s")
        // Each refused request is counted once: sent once (no resend on a loaded machine's slow reply).
        const once = { attemptTimeoutMs: 10_000 }
        const denied = yield* Effect.flip(reader.call(server.address, Put, { key: "k" }, once))
        expect(denied._tag).toBe("PermissionDenied")
        expect((yield* writer.call(server.address, Put, { key: "k" })).ok).toBe(true)
        expect((yield* Effect.flip(writer.call(server.address, Admin, {}, once)))._tag).toBe("PermissionDenied")
        expect((yield* admin.call(server.address, Admin, {})).ok).toBe(true)
        expect(server.transport.stats.refused).toEqual({ "read-only": 1, "read-write": 1, admin: 0, server: 0 })

        // Raft's channel: only the server key is heard.
        for (const node of [reader, writer, admin]) node.sendOneWay(server.address, "raft", "forged")
        peer.sendOneWay(server.address, "raft", "real")
        yield* Effect.promise(() => waitFor(() => raft.length === 1 && server.transport.stats.drops.forbidden === 3))
        expect(raft).toEqual(["real"])
        expect(server.transport.stats.drops.forbidden).toBe(3)
      }),
    ))

  test("a reply forged under a client key does not answer a server's call", () =>
    runScoped(
      Effect.gen(function* () {
        const keys: KeyGrant[] = [
          { secret: "server key", role: "server" },
          { secret: "admin key", role: "admin" },
        ]
        // The caller is a server that also accepts client keys; the callee answers under a client key.
        const caller = yield* udpNode({ keys })
        const impostor = yield* udpNode({ key: "admin key" })
        impostor.handle(Echo, (r) => ({ ...r, servedBy: "impostor" }))
        impostor.allow("read-only", [Echo])
        // The impostor cannot read the request (it holds no server key), so nothing is answered at all.
        expect((yield* Effect.flip(caller.call(impostor.address, Echo, { n: 1, text: "x" }, fail)))._tag).toBe(
          "Timeout",
        )
        // Even a reply sealed under the client key to a known request id would be dropped, not believed.
        const codec = new FrameCodec({ key: "admin key" })
        const raw = yield* Effect.promise(() => openUdpLink({ bind: "127.0.0.1:0" }, () => {}))
        yield* Effect.addFinalizer(() => Effect.sync(() => raw.close()))
        const { encodeEnvelope } = yield* Effect.promise(() => import("../src/envelope.ts"))
        raw.send(caller.address, codec.encode(encodeEnvelope([1, 1, 12345, { n: 1 }]), 1)![0]!)
        yield* Effect.promise(() => waitFor(() => caller.transport.stats.drops.forbidden >= 1))
        expect(caller.transport.stats.drops.forbidden).toBeGreaterThanOrEqual(1)
      }),
    ))
})
