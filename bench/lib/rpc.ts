import { RpcNode, type RpcNodeShape, Transport } from "@kv/rpc"
import { Context, Effect, Exit, Layer, Scope } from "effect"

/** An RPC endpoint on an ephemeral loopback port, and a way to close it. */
export const openRpcNode = async (): Promise<{ readonly rpc: RpcNodeShape; close(): Promise<void> }> => {
  const scope = Effect.runSync(Scope.make())
  const rpc = await Effect.runPromise(
    Layer.buildWithScope(RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0" }))), scope).pipe(
      Effect.map((context) => Context.get(context, RpcNode)),
    ),
  )
  return { rpc, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}
