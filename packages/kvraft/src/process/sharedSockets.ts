import { type KeyGrant, RpcNode, Transport, type TransportError } from "@kv/rpc"
import { Context, Deferred, Effect, Layer, type Scope } from "effect"

export interface SocketOptions {
  readonly bind: string
  readonly key: string | undefined
  readonly keys: readonly KeyGrant[] | undefined
}

/**
 * The UDP sockets of one process, by advertised address: replicas of different shard groups given
 * the same address in cluster.toml share one socket (each through its group's scoped view, see
 * RpcNodeShape.scoped), so one datagram carries every group's messages to the same peer process.
 * The first replica to ask binds it, in the scope it runs in (the process's); the others wait.
 */
export class SharedSockets {
  readonly #nodes = new Map<string, Deferred.Deferred<Context.Context<RpcNode>, TransportError>>()

  node(address: string, options: SocketOptions): Effect.Effect<Context.Context<RpcNode>, TransportError, Scope.Scope> {
    const nodes = this.#nodes
    return Effect.gen(function* () {
      const existing = nodes.get(address)
      if (existing !== undefined) return yield* Deferred.await(existing)
      const made = Deferred.makeUnsafe<Context.Context<RpcNode>, TransportError>()
      nodes.set(address, made)
      const exit = yield* Effect.exit(Layer.build(socketLayer(options)))
      Deferred.doneUnsafe(made, exit)
      return yield* exit
    })
  }
}

export const socketLayer = (options: SocketOptions): Layer.Layer<RpcNode, TransportError> =>
  RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind: options.bind, key: options.key, keys: options.keys })))

/** The context with `RpcNode` replaced by its view for `scope` (unchanged without one). */
export const scopedContext = <R>(context: Context.Context<R | RpcNode>, scope: string | undefined) =>
  scope === undefined ? context : Context.add(context, RpcNode, Context.get(context, RpcNode).scoped(scope))
