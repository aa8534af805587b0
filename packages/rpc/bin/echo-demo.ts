/**
 * A request/response echo over real UDP on 127.0.0.1: one server, one client, a few calls, then
 * the transport counters. Run with `bun run demo`.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { defineMethod, RpcNode, type RpcNodeShape, Transport } from "../src/index.ts"

const Echo = defineMethod(
  "demo.echo",
  Schema.Struct({ text: Schema.String }),
  Schema.Struct({ text: Schema.String, servedBy: Schema.String }),
)

const node = (bind: string) =>
  Layer.build(RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind })))).pipe(
    Effect.map((context): RpcNodeShape => Context.get(context, RpcNode)),
  )

const program = Effect.gen(function* () {
  const server = yield* node("127.0.0.1:0")
  server.handle(Echo, ({ text }) => ({ text: text.toUpperCase(), servedBy: server.address }))
  const client = yield* node("127.0.0.1:0")
  console.log(`server listening on udp://${server.address}, client on udp://${client.address}`)
  for (const text of ["hello", "linearizable", "kv"]) {
    const start = performance.now()
    const reply = yield* client.call(server.address, Echo, { text })
    console.log(`  ${text} -> ${reply.text} from ${reply.servedBy} in ${(performance.now() - start).toFixed(2)} ms`)
  }
  const n = 2_000
  const start = performance.now()
  yield* Effect.forEach(
    Array.from({ length: n }, (_, i) => i),
    (i) => client.call(server.address, Echo, { text: `m${i}` }),
    { concurrency: 64, discard: true },
  )
  const seconds = (performance.now() - start) / 1000
  console.log(`${n} calls at 64 concurrent: ${Math.round(n / seconds)} round trips/s`)
  console.log("server counters:", JSON.stringify(server.transport.stats.snapshot()))
})

Effect.runPromise(Effect.scoped(program)).catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
