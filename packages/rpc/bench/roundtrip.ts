/**
 * Request/response round trips per second over UDP loopback, server in its own process:
 * sequential and 64 concurrent. Also measures datagram loss of both UDP backends under a paced
 * burst, which decided the default backend. `bun run bench:rpc` (add `--quick` for a short run).
 */
import { Context, Effect, Layer, Schema } from "effect"
import { defineMethod, openUdpLink, RpcNode, type RpcNodeShape, Transport, type UdpBackend } from "../src/index.ts"

const Echo = defineMethod("bench.echo", Schema.Struct({ n: Schema.Int }), Schema.Struct({ n: Schema.Int }))

const node = (bind: string) =>
  Layer.build(RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind })))).pipe(
    Effect.map((context): RpcNodeShape => Context.get(context, RpcNode)),
  )

const serve = Effect.gen(function* () {
  const server = yield* node("127.0.0.1:0")
  server.handle(Echo, (r) => r)
  console.log(`READY ${server.address}`)
  yield* Effect.never
})

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
  const address = text.trim().split(" ")[1] ?? ""
  try {
    const results = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const client = yield* node("127.0.0.1:0")
          yield* measure(client, address, 1, 0.5)
          const out = []
          for (const c of [1, 64]) out.push(yield* measure(client, address, c, seconds))
          return out
        }),
      ),
    )
    console.log("| concurrency | round trips/s | p50 ms | p99 ms |\n|---|---|---|---|")
    for (const r of results) console.log(`| ${r.concurrency} | ${r.ops} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} |`)
  } finally {
    child.kill()
  }
  console.log("\n| backend | 8 KiB datagrams sent at 20k/s | received | loss % |\n|---|---|---|---|")
  for (const backend of ["bun", "node-dgram"] as UdpBackend[]) {
    const r = await lossOf(backend, quick ? 20_000 : 60_000, 8 * 1024, 20_000)
    console.log(`| ${r.backend} | ${r.sent} | ${r.received} | ${r.lossPercent.toFixed(2)} |`)
  }
}

if (process.argv.includes("--serve")) Effect.runPromise(Effect.scoped(serve))
else await main()
