import { loadClusterConfig } from "@kv/kvraft"
import { RpcNode, Transport, type TransportError } from "@kv/rpc"
import {
  type Config,
  type ControllerClientOptions,
  type ControllerClientShape,
  makeControllerClient,
} from "@kv/shardctrler"
import { Context, Effect, Layer, ManagedRuntime } from "effect"
import { clientBind } from "./clientBind.ts"

export interface ConnectAdminOptions extends Omit<ControllerClientOptions, "controllers"> {
  /** Shard-controller replica addresses. */
  readonly controllers?: readonly string[]
  /** A cluster.toml to read the controller's addresses (and the cluster key) from. */
  readonly config?: string
  readonly clusterKey?: string
  readonly bind?: string
}

/** Managing the sharded cluster, as Promises. Rejects with `ControllerError` (GroupExists, UnknownGroup, BadShard, ...) or `Timeout`. */
export interface Admin {
  join(groups: Readonly<Record<string, readonly string[]>>): Promise<void>
  leave(gids: readonly number[]): Promise<void>
  move(shard: number, gid: number): Promise<void>
  /** Configuration `num`; the latest when omitted or -1. */
  query(num?: number): Promise<Config>
  close(): Promise<void>
}

const resolveControllers = (options: ConnectAdminOptions) => {
  if (options.controllers !== undefined && options.controllers.length > 0) {
    return {
      controllers: options.controllers,
      clusterKey: options.clusterKey ?? process.env.KV_CLIENT_KEY ?? process.env.KV_CLUSTER_KEY,
    }
  }
  if (options.config !== undefined) {
    const config = loadClusterConfig(options.config)
    if (config.controller.replicas.length === 0) throw new Error(`${config.source} has no [controller] section`)
    return {
      controllers: config.controller.replicas,
      clusterKey: options.clusterKey ?? config.clientKey ?? config.clusterKey,
    }
  }
  throw new Error("connectAdmin() needs `controllers` or `config`")
}

/** The admin operations as an Effect service. */
export class KvAdmin extends Context.Service<KvAdmin, ControllerClientShape>()("@kv/clerk/KvAdmin") {
  static layer(options: ConnectAdminOptions): Layer.Layer<KvAdmin, TransportError> {
    return Layer.unwrap(
      Effect.sync(() => {
        const { controllers, clusterKey } = resolveControllers(options)
        const rpc = RpcNode.layer.pipe(
          Layer.provide(Transport.layerUdp({ bind: options.bind ?? clientBind(controllers), key: clusterKey })),
        )
        return Layer.effect(
          KvAdmin,
          Effect.flatMap(
            RpcNode.useSync((node) => node),
            (node) => makeControllerClient(node, { ...options, controllers }),
          ),
        ).pipe(Layer.provide(rpc))
      }),
    )
  }
}

/** Connects to the shard controller for join/leave/move/query. */
export const connectAdmin = async (options: ConnectAdminOptions): Promise<Admin> => {
  const runtime = ManagedRuntime.make(KvAdmin.layer(options))
  const admin = await runtime.runPromise(KvAdmin.useSync((a) => a))
  return {
    join: (groups) => runtime.runPromise(admin.join(groups)),
    leave: (gids) => runtime.runPromise(admin.leave(gids)),
    move: (shard, gid) => runtime.runPromise(admin.move(shard, gid)),
    query: (num) => runtime.runPromise(admin.query(num)),
    close: () => runtime.dispose(),
  }
}
