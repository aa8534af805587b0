import {
  type ClusterConfig,
  type KvClientError,
  type KvClientShape,
  type LeaderCallerOptions,
  loadClusterConfig,
  makeKvClient,
} from "@kv/kvraft"
import { RpcNode, Transport, type TransportError } from "@kv/rpc"
import { Context, Effect, Layer, ManagedRuntime } from "effect"

export interface ConnectOptions extends LeaderCallerOptions {
  /** Replicas of a single kvraft group. */
  readonly servers?: readonly string[]
  /** A cluster.toml: its [kvraft] replicas are used. */
  readonly config?: string
  /** Shared secret for HMAC-authenticated datagrams (defaults to the config's, or KV_CLUSTER_KEY). */
  readonly clusterKey?: string
  /** Local UDP address to bind; default an ephemeral port on 127.0.0.1. */
  readonly bind?: string
}

/** The Promise API for Bun apps: no Effect knowledge needed. Safe for concurrent use. */
export interface Clerk {
  /** The value of `key`, or "" when it is absent. */
  get(key: string): Promise<string>
  put(key: string, value: string): Promise<void>
  /** Appends to the value (an absent key acts as ""). */
  append(key: string, value: string): Promise<void>
  delete(key: string): Promise<void>
  /** Releases the socket. Pending operations fail. */
  close(): Promise<void>
}

interface Target {
  readonly servers: readonly string[]
  readonly clusterKey: string | undefined
}

const resolveTarget = (options: ConnectOptions): Target => {
  if (options.servers !== undefined && options.servers.length > 0) {
    return { servers: options.servers, clusterKey: options.clusterKey ?? process.env.KV_CLUSTER_KEY }
  }
  if (options.config !== undefined) {
    const config: ClusterConfig = loadClusterConfig(options.config)
    if (config.kvraft === undefined) throw new Error(`${config.source} has no [kvraft] section`)
    return { servers: config.kvraft.replicas, clusterKey: options.clusterKey ?? config.clusterKey }
  }
  throw new Error("connect() needs `servers` or `config`")
}

/** The Effect API: the same operations as a service, for Effect apps. */
export class Kv extends Context.Service<Kv, KvClientShape>()("@kv/clerk/Kv") {
  /** A client with its own UDP socket, closed with the layer's scope. */
  static layer(options: ConnectOptions): Layer.Layer<Kv, TransportError> {
    return Layer.effect(
      Kv,
      Effect.suspend(() => {
        const target = resolveTarget(options)
        return Effect.flatMap(
          RpcNode.useSync((rpc) => rpc),
          (rpc) => makeKvClient(rpc, { ...options, servers: target.servers }),
        ).pipe(
          Effect.provide(
            RpcNode.layer.pipe(
              Layer.provide(Transport.layerUdp({ bind: options.bind ?? "127.0.0.1:0", key: target.clusterKey })),
            ),
          ),
        )
      }),
    )
  }
}

/**
 * Connects to a kv cluster. Operations retry across replicas until their deadline (30 s by
 * default) and then reject with `Timeout` (a write may or may not have happened).
 */
export const connect = async (options: ConnectOptions): Promise<Clerk> => {
  const runtime = ManagedRuntime.make(Kv.layer(options))
  const client = await runtime.runPromise(Kv.useSync((kv) => kv))
  const run = <A>(effect: Effect.Effect<A, KvClientError>): Promise<A> => runtime.runPromise(effect)
  return {
    get: (key) => run(client.get(key)),
    put: (key, value) => run(client.put(key, value)),
    append: (key, value) => run(client.append(key, value)),
    delete: (key) => run(client.delete(key)),
    close: () => runtime.dispose(),
  }
}
