/**
 * Request/response round trips per second over UDP loopback, server in its own process:
 * sequential and 64 concurrent, without a key and with one (AES-256-GCM), in alternating rounds.
 * Also the per-datagram cost of sealing and opening against the HMAC-SHA256 that authenticated
 * datagrams before, and datagram loss of both UDP backends under a paced burst, which decided the
 * default backend. `bun run bench:rpc` (add `--quick` for a short run).
 */
import { Context, Effect, Layer, Schema } from "effect"
import {
  defineMethod,
  FrameCodec,
  openUdpLink,
  RpcNode,
  type RpcNodeShape,
  Transport,
  type UdpBackend,
} from "../src/index.ts"

const Echo = defineMethod("bench.echo", Schema.Struct({ n: Schema.Int }), Schema.Struct({ n: Schema.Int }))
const BENCH_KEY = "bench cluster key"

const node = (bind: string, key?: string) =>
  Layer.build(RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind, key })))).pipe(
    Effect.map((context): RpcNodeShape => Context.get(context, RpcNode)),
  )

/** One server process serving on two sockets: one without a key, one with. */
const serve = Effect.gen(function* () {
  const plain = yield* node("127.0.0.1:0")
  const keyed = yield* node("127.0.0.1:0", BENCH_KEY)
  for (const server of [plain, keyed]) server.handle(Echo, (r) => r)
  console.log(`READY ${plain.address} ${keyed.address}`)
  yield* Effect.never
})

/**
 * Microseconds per datagram to frame, seal, open and unframe one message of `bytes`; beside it the
 * same without a key, and with the two HMAC-SHA256 (send, verify) a keyed datagram cost before.
 * The best of three interleaved runs, so a busy moment on the machine hits no mode alone.
 */
const sealCost = (bytes: number, rounds: number) => {
  const message = new Uint8Array(bytes).fill(7)
  const plain = new FrameCodec()
  const sealed = new FrameCodec({ key: BENCH_KEY })
  const mac = (datagram: Uint8Array) => {
    const hasher = new Bun.CryptoHasher("sha256", BENCH_KEY)
    hasher.update(datagram)
    return hasher.digest()
  }
  const modes = {
    none: () => plain.decode(plain.encode(message, 1)![0]!),
    hmac: () => {
      const datagram = plain.encode(message, 1)![0]!
      mac(datagram)
      mac(datagram)
      plain.decode(datagram)
    },
    aead: () => sealed.decode(sealed.encode(message, 1)![0]!),
  }
  const best = { none: Number.POSITIVE_INFINITY, hmac: Number.POSITIVE_INFINITY, aead: Number.POSITIVE_INFINITY }
  for (let run = 0; run < 3; run++) {
    for (const mode of ["none", "hmac", "aead"] as const) {
      const work = modes[mode]
      for (let i = 0; i < rounds / 10; i++) work()
      const start = performance.now()
      for (let i = 0; i < rounds; i++) work()
      best[mode] = Math.min(best[mode], ((performance.now() - start) * 1000) / rounds)
    }
  }
  return { bytes, ...best }
}

const measure = (client: RpcNodeShape, to: string, concurrency: number, seconds: number) =>
  Effect.gen(function* () {
    const latencies: number[] = []
    const until = performance.now() + seconds * 1000
    let n = 0
    const worker = Effect.gen(function* () {
      while (performance.now() < until) {
        const start = performance.now()
        yield* client.call(to, Echo, { n: n++ })
        latencies.push(performance.now() - start)
      }
    })
    const start = performance.now()
    yield* Effect.all(
      Array.from({ length: concurrency }, () => worker),
      { concurrency: "unbounded", discard: true },
    )
    const elapsed = (performance.now() - start) / 1000
    latencies.sort((a, b) => a - b)
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0
    return { concurrency, ops: Math.round(latencies.length / elapsed), p50: pct(0.5), p99: pct(0.99) }
  })

/** Sends `count` datagrams of `size` bytes paced at `perSecond` and counts what arrives. */
const lossOf = async (backend: UdpBackend, count: number, size: number, perSecond: number) => {
  let received = 0
  const receiver = await openUdpLink({ bind: "127.0.0.1:0", backend }, () => {
    received++
  })
  const sender = await openUdpLink({ bind: "127.0.0.1:0", backend: "node-dgram" }, () => {})
  const payload = new Uint8Array(size)
  const batch = Math.max(1, Math.round(perSecond / 1000))
  for (let sent = 0; sent < count; ) {
    for (let i = 0; i < batch && sent < count; i++, sent++) sender.send(receiver.address, payload)
    await Bun.sleep(1)
  }
  await Bun.sleep(200)
  receiver.close()
  sender.close()
  return { backend, sent: count, received, lossPercent: (100 * (count - received)) / count }
}

const main = async () => {
  const quick = process.argv.includes("--quick")
  const seconds = quick ? 2 : 5
  const child = Bun.spawn(["bun", import.meta.path, "--serve"], { stdout: "pipe", stderr: "inherit" })
  const reader = child.stdout.getReader()
  let text = ""
  while (!text.includes("\n")) {
    const { value, done } = await reader.read()
    if (done) throw new Error("server exited")
    text += new TextDecoder().decode(value)
  }
  const [, plainAddress = "", keyedAddress = ""] = text.trim().split(" ")
  const rounds = quick ? 2 : 3
  try {
    const results = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const plain = yield* node("127.0.0.1:0")
          const keyed = yield* node("127.0.0.1:0", BENCH_KEY)
          yield* measure(plain, plainAddress, 1, 0.5)
          yield* measure(keyed, keyedAddress, 1, 0.5)
          const out: { mode: string; round: number; concurrency: number; ops: number; p50: number; p99: number }[] = []
          // Alternating, so both modes see the same machine load on average.
          for (let round = 1; round <= rounds; round++) {
            for (const c of [1, 64]) {
              out.push({ mode: "no key", round, ...(yield* measure(plain, plainAddress, c, seconds)) })
              out.push({ mode: "AES-256-GCM", round, ...(yield* measure(keyed, keyedAddress, c, seconds)) })
            }
          }
          return out
        }),
      ),
    )
    console.log("| round | concurrency | mode | round trips/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|")
    for (const r of results) {
      console.log(
        `| ${r.round} | ${r.concurrency} | ${r.mode} | ${r.ops} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} |`,
      )
    }
  } finally {
    child.kill()
  }
  console.log("\n| message bytes | µs per datagram: no key | HMAC-SHA256 (before) | AES-256-GCM (now) |")
  console.log("|---|---|---|---|")
  for (const bytes of [100, 1_000, 8 * 1024, 60_000]) {
    const r = sealCost(bytes, quick ? 20_000 : 100_000)
    console.log(`| ${r.bytes} | ${r.none.toFixed(2)} | ${r.hmac.toFixed(2)} | ${r.aead.toFixed(2)} |`)
  }
  console.log("\n| backend | 8 KiB datagrams sent at 20k/s | received | loss % |\n|---|---|---|---|")
  for (const backend of ["bun", "node-dgram"] as UdpBackend[]) {
    const r = await lossOf(backend, quick ? 20_000 : 60_000, 8 * 1024, 20_000)
    console.log(`| ${r.backend} | ${r.sent} | ${r.received} | ${r.lossPercent.toFixed(2)} |`)
  }
}

const USAGE = `usage: bun run bench:rpc [--quick]
Request/response round trips per second over UDP on 127.0.0.1 (server in its own process),
sequential and 64 concurrent, without a key and with one (AES-256-GCM), in alternating rounds;
then the cost of sealing a datagram, and datagram loss of both UDP backends under a paced burst.
  --quick   2 s cells and 2 rounds instead of 5 s and 3`

if (process.argv.includes("--help") || process.argv.includes("-h")) console.log(USAGE)
else if (process.argv.includes("--serve")) Effect.runPromise(Effect.scoped(serve))
else await main()
