import {
  type CasResult,
  type ClusterConfig,
  type KvEntry,
  type KvListEntry,
  type LeaderCallerOptions,
  type ListOptions,
  type ListPage,
  loadClusterConfig,
  makeKvClient,
  type TxnRequest,
  type TxnResult,
} from "@kv/kvraft"
import { RpcNode, type RpcNodeShape, Transport, type TransportError } from "@kv/rpc"
import { makeShardKvClient } from "@kv/shardkv"
import { Context, Effect, Layer, ManagedRuntime } from "effect"
import { type KvShape, kvShapeOf, type ListAllOptions, type WriteCondition } from "./coordination.ts"

export interface ConnectOptions extends LeaderCallerOptions {
  /** Replicas of a single kvraft group. */
  readonly servers?: readonly string[]
  /** Replicas of the shard controller: the client routes each key to the group serving its shard. */
  readonly controllers?: readonly string[]
  /**
   * A cluster.toml: the sharded cluster when it has [controller] replicas (unless `service`
   * says "kvraft"), otherwise its [kvraft] group.
   */
  readonly config?: string
  /** With `config`: which service of the file to use. Default "sharded" when the file has a controller. */
  readonly service?: "sharded" | "kvraft"
  /**
   * Shared secret for HMAC-authenticated datagrams. Default with `config`: KV_CLUSTER_KEY, the
   * file's clusterKeyFile, or the key `bun run cluster` generated in its data directory; with
   * `servers` or `controllers`: KV_CLUSTER_KEY.
   */
  readonly clusterKey?: string
  /** Local UDP address to bind; default an ephemeral port on 127.0.0.1. */
  readonly bind?: string
}

/** The Promise API for Bun apps: no Effect knowledge needed. Safe for concurrent use. */
export interface Clerk {
  /** The value of `key`, or "" when it is absent. */
  get(key: string): Promise<string>
  /** The key's value and metadata (`version`, `modRevision`, `createRevision`), or undefined when it is absent. */
  getEntry(key: string): Promise<KvEntry | undefined>
  put(key: string, value: string): Promise<void>
  /**
   * Puts `value` only if `condition` holds (`{ ifVersion }`, `{ ifModRevision }`, `{ ifValue }`,
   * `{ ifAbsent: true }`). Resolves `{ applied, revision, entry? }`: `entry` is the key's current
   * entry when the condition failed. Exactly once: a retried call gets its first answer.
   */
  put(key: string, value: string, condition: WriteCondition): Promise<CasResult>
  /** Appends to the value (an absent key acts as ""). */
  append(key: string, value: string): Promise<void>
  delete(key: string): Promise<void>
  /** Deletes the key only if `condition` holds; resolves as a conditional `put` does. */
  delete(key: string, condition: WriteCondition): Promise<CasResult>
  /**
   * If every compare holds the success ops run, else the failure ops: atomically, at one revision.
   * On the sharded service every key must be in one shard (give them one hash tag, `{user42}.a`),
   * or it rejects with `CrossShard` before anything is written.
   */
  txn(request: TxnRequest): Promise<TxnResult>
  /** One page of the keys under `prefix`, in byte order; pass `next` as `after` for the following one. */
  list(prefix: string, options?: ListOptions): Promise<ListPage>
  /** Every key under `prefix`, in byte order, fetched a page at a time as the loop goes. */
  listAll(prefix: string, options?: ListAllOptions): AsyncIterable<KvListEntry>
  /** Releases the socket. Pending operations fail. */
  close(): Promise<void>
}

interface Target {
  readonly kind: "kvraft" | "sharded"
  readonly addresses: readonly string[]
  readonly clusterKey: string | undefined
}

const resolveTarget = (options: ConnectOptions): Target => {
  const envKey = options.clusterKey ?? process.env.KV_CLUSTER_KEY
  if (options.servers !== undefined && options.servers.length > 0) {
    return { kind: "kvraft", addresses: options.servers, clusterKey: envKey }
  }
  if (options.controllers !== undefined && options.controllers.length > 0) {
    return { kind: "sharded", addresses: options.controllers, clusterKey: envKey }
  }
  if (options.config !== undefined) {
    const config: ClusterConfig = loadClusterConfig(options.config)
    const clusterKey = options.clusterKey ?? config.clusterKey
    const sharded = config.controller.replicas.length > 0
    if (options.service !== "kvraft" && sharded) {
      return { kind: "sharded", addresses: config.controller.replicas, clusterKey }
    }
    if (config.kvraft === undefined) throw new Error(`${config.source} has no [kvraft] section`)
    return { kind: "kvraft", addresses: config.kvraft.replicas, clusterKey }
  }
  throw new Error("connect() needs `servers`, `controllers` or `config`")
}

/** The low-level client for a target, on an RpcNode. */
export const clientFor = (rpc: RpcNodeShape, target: Target, options: LeaderCallerOptions) =>
  target.kind === "sharded"
    ? makeShardKvClient(rpc, { ...options, controllers: target.addresses })
    : makeKvClient(rpc, { ...options, servers: target.addresses })

export { resolveTarget, type Target }

/** The Effect API: the same operations as a service, for Effect apps. */
export class Kv extends Context.Service<Kv, KvShape>()("@kv/clerk/Kv") {
  /** A client with its own UDP socket, closed with the layer's scope. */
  static layer(options: ConnectOptions): Layer.Layer<Kv, TransportError> {
    return Layer.unwrap(
      Effect.sync(() => {
        const target = resolveTarget(options)
        const rpc = RpcNode.layer.pipe(
          Layer.provide(Transport.layerUdp({ bind: options.bind ?? "127.0.0.1:0", key: target.clusterKey })),
        )
        return Layer.effect(
          Kv,
          Effect.flatMap(
            RpcNode.useSync((node) => node),
            (node) => Effect.map(clientFor(node, target, options), kvShapeOf),
          ),
        ).pipe(Layer.provide(rpc))
      }),
    )
  }
}

/**
 * Connects to a kv cluster. Operations retry across replicas until their deadline (30 s by
 * default) and then reject with `Timeout` (a write may or may not have happened). A client whose
 * session expired renews it by itself; `OutcomeUnknown` says a write's outcome could not be known.
 */
export const connect = async (options: ConnectOptions): Promise<Clerk> => {
  const runtime = ManagedRuntime.make(Kv.layer(options))
  const client = await runtime.runPromise(Kv.useSync((kv) => kv))
  const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => runtime.runPromise(effect)
  function put(key: string, value: string): Promise<void>
  function put(key: string, value: string, condition: WriteCondition): Promise<CasResult>
  function put(key: string, value: string, condition?: WriteCondition) {
    return condition === undefined ? run(client.put(key, value)) : run(client.put(key, value, condition))
  }
  function del(key: string): Promise<void>
  function del(key: string, condition: WriteCondition): Promise<CasResult>
  function del(key: string, condition?: WriteCondition) {
    return condition === undefined ? run(client.delete(key)) : run(client.delete(key, condition))
  }
  return {
    get: (key) => run(client.get(key)),
    getEntry: (key) => run(client.getEntry(key)),
    put,
    append: (key, value) => run(client.append(key, value)),
    delete: del,
    txn: (request) => run(client.txn(request)),
    list: (prefix, options) => run(client.list(prefix, options)),
    listAll: (prefix, options = {}) => ({
      async *[Symbol.asyncIterator]() {
        let after: string | undefined
        do {
          const page = await run(client.list(prefix, { after, limit: options.pageSize, keysOnly: options.keysOnly }))
          yield* page.entries
          after = page.next
        } while (after !== undefined)
      },
    }),
    close: () => runtime.dispose(),
  }
}
