import {
  type CasResult,
  type ClusterConfig,
  type Holder,
  type KvClientShape,
  type KvEntry,
  type KvGroupClientShape,
  type KvListEntry,
  type LeaderCallerOptions,
  type LeaseGrant,
  type LeaseStatus,
  type ListOptions,
  type ListPage,
  loadClusterConfig,
  makeKvClient,
  type TxnRequest,
  type TxnResult,
  type WatchEvent,
  type WatchItem,
  type WatchOptions,
  type WatchTarget,
} from "@kv/kvraft"
import { RpcNode, type RpcNodeShape, Transport, type TransportError } from "@kv/rpc"
import { makeShardKvClient } from "@kv/shardkv"
import { Context, Deferred, Duration, Effect, Exit, Layer, ManagedRuntime, Scope, Stream } from "effect"
import { clientBind } from "./clientBind.ts"
import { type KvShape, kvShapeOf, type LeaseOption, type ListAllOptions, type WriteCondition } from "./coordination.ts"
import type { LeaseLost } from "./errors.ts"
import type { HeldLock, LockOptions } from "./locks.ts"

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
   * Shared secret for encrypted, authenticated datagrams. Default with `config`: KV_CLUSTER_KEY, the
   * file's clusterKeyFile, or the key `bun run cluster` generated in its data directory; with
   * `servers` or `controllers`: KV_CLUSTER_KEY.
   */
  readonly clusterKey?: string
  /**
   * This client's own key, which the servers list under [[clientKeys]] with its role (read-only,
   * read-write or admin); used instead of the cluster key. Default: KV_CLIENT_KEY.
   */
  readonly clientKey?: string
  /**
   * Local UDP address to bind; default an ephemeral port on 127.0.0.1 when every server is on
   * loopback, else on every interface (0.0.0.0), so servers on other machines can answer.
   */
  readonly bind?: string
}

/** The Promise API for Bun apps: no Effect knowledge needed. Safe for concurrent use. */
export interface Clerk {
  /** The value of `key`, or "" when it is absent. */
  get(key: string): Promise<string>
  /** The key's value and metadata (`version`, `modRevision`, `createRevision`), or undefined when it is absent. */
  getEntry(key: string): Promise<KvEntry | undefined>
  put(key: string, value: string): Promise<void>
  /** A conditional put that attaches the key to `lease` when it applies (kvraft only). */
  put(key: string, value: string, condition: WriteCondition & LeaseOption): Promise<CasResult>
  /**
   * Puts `value` only if `condition` holds (`{ ifVersion }`, `{ ifModRevision }`, `{ ifValue }`,
   * `{ ifAbsent: true }`). Resolves `{ applied, revision, entry? }`: `entry` is the key's current
   * entry when the condition failed. Exactly once: a retried call gets its first answer.
   */
  put(key: string, value: string, condition: WriteCondition): Promise<CasResult>
  /** Puts the key attached to `lease`: deleted when the lease ends (kvraft only; `LeaseNotFound` once it has). */
  put(key: string, value: string, options: LeaseOption): Promise<void>
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
  /**
   * The changes of a key (or of every key under `{ prefix }`) as they happen, in revision order,
   * with no gap and no repeat, resuming by itself across leader changes, partitions and shard
   * moves (`for await`; leaving the loop stops the watch, and so does `close()`). Throws
   * `Compacted` when the servers no longer keep the events it needs. `fromRevision` starts at an
   * earlier revision; `{ progress: true }` adds `{ type: "progress", revision }` items.
   */
  watch(target: WatchTarget, options?: WatchOptions & { readonly progress?: false }): AsyncIterable<WatchEvent>
  watch(target: WatchTarget, options: WatchOptions & { readonly progress: true }): AsyncIterable<WatchItem>
  /** A new lease of `ttlMs` (1 s to 1 day), to renew yourself with `keepAlive` (or use `lease`). kvraft only. */
  grant(ttlMs: number): Promise<LeaseGrant>
  /** Renews the lease to its full TTL, once; rejects with `LeaseNotFound` once it has ended. */
  keepAlive(lease: number): Promise<LeaseGrant>
  /** Ends the lease now, deleting its keys at one revision; `LeaseNotFound` if it had already ended. */
  revoke(lease: number): Promise<void>
  /** The lease's TTL, time left (never less than the truth) and keys; undefined once it has ended. */
  timeToLive(lease: number): Promise<LeaseStatus | undefined>
  /** Every lease (keys left out). */
  leases(): Promise<readonly LeaseStatus[]>
  /** A lease granted now and kept alive by this client until `revoke()` or `close()`; `lost` says when it is gone. */
  lease(ttlMs: number): Promise<LeaseHandle>
  /**
   * Takes lock `name`, waiting while another client holds it (at most `timeoutMs`, then
   * `LockTimeout`). Its `token` only grows from holder to holder: give it to what the lock guards.
   */
  lock(name: string, options?: LockOptions): Promise<LockHandle>
  /** Becomes leader of election `name` with `value`, waiting while another client leads. */
  campaign(name: string, value: string, options?: LockOptions): Promise<Leadership>
  /** The current leader of election `name` (or holder of lock `name`): its value and token, if any. */
  leader(name: string): Promise<Holder | undefined>
  /** Releases the socket. Pending operations fail, watches end, locks and leases held here are released. */
  close(): Promise<void>
}

/** A lease this client keeps alive (`Clerk.lease`). */
export interface LeaseHandle {
  readonly id: number
  readonly ttlMs: number
  /**
   * Resolves (never rejects) with `LeaseLost` if the lease is lost while kept: `reason` "ended"
   * (revoked, expired) or "unrenewed" (no renewal got through within the TTL).
   */
  readonly lost: Promise<LeaseLost>
  /** Stops renewing and revokes the lease: its keys are deleted now. */
  revoke(): Promise<void>
  /** Stops renewing: the lease runs out its TTL, then its keys are deleted. */
  release(): Promise<void>
}

/** A lock held (`Clerk.lock`). */
export interface LockHandle {
  readonly name: string
  /** The lock's key, `locks/<name>`. */
  readonly key: string
  /** The fencing token: larger than every earlier holder's. */
  readonly token: number
  readonly lease: number
  /** Resolves (never rejects) once the lock's lease is lost: another client may hold the lock from then on. */
  readonly lost: Promise<LeaseLost>
  /** Releases the lock if still held, and revokes the lease taken for it. */
  unlock(): Promise<void>
}

/** An election won (`Clerk.campaign`). */
export interface Leadership extends LockHandle {
  /** Changes the leader's value; false once this client no longer leads. */
  proclaim(value: string): Promise<boolean>
  /** Steps down (the lock's `unlock`). */
  resign(): Promise<void>
}

interface Target {
  readonly kind: "kvraft" | "sharded"
  readonly addresses: readonly string[]
  readonly clusterKey: string | undefined
}

const resolveTarget = (options: ConnectOptions): Target => {
  const envKey = options.clientKey ?? options.clusterKey ?? process.env.KV_CLIENT_KEY ?? process.env.KV_CLUSTER_KEY
  if (options.servers !== undefined && options.servers.length > 0) {
    return { kind: "kvraft", addresses: options.servers, clusterKey: envKey }
  }
  if (options.controllers !== undefined && options.controllers.length > 0) {
    return { kind: "sharded", addresses: options.controllers, clusterKey: envKey }
  }
  if (options.config !== undefined) {
    // A client key given here, like KV_CLIENT_KEY, spares the client the servers' key files.
    const config: ClusterConfig = loadClusterConfig(
      options.config,
      options.clientKey === undefined ? {} : { env: { ...process.env, KV_CLIENT_KEY: options.clientKey } },
    )
    const clusterKey = options.clientKey ?? options.clusterKey ?? config.clientKey ?? config.clusterKey
    const sharded = config.controller.replicas.length > 0
    if (options.service !== "kvraft" && sharded) {
      return { kind: "sharded", addresses: config.controller.replicas, clusterKey }
    }
    if (config.kvraft === undefined) throw new Error(`${config.source} has no [kvraft] section`)
    return { kind: "kvraft", addresses: config.kvraft.replicas, clusterKey }
  }
  throw new Error("connect() needs `servers`, `controllers` or `config`")
}

/** The low-level client for a target, on an RpcNode; `group` is the kvraft client, which has leases. */
export const clientFor = (
  rpc: RpcNodeShape,
  target: Target,
  options: LeaderCallerOptions,
): Effect.Effect<{ readonly client: KvClientShape; readonly group?: KvGroupClientShape }> =>
  target.kind === "sharded"
    ? Effect.map(makeShardKvClient(rpc, { ...options, controllers: target.addresses }), (client) => ({ client }))
    : Effect.map(makeKvClient(rpc, { ...options, servers: target.addresses }), (group) => ({ client: group, group }))

export { resolveTarget, type Target }

/** The Effect API: the same operations as a service, for Effect apps. */
export class Kv extends Context.Service<Kv, KvShape>()("@kv/clerk/Kv") {
  /** A client with its own UDP socket, closed with the layer's scope. */
  static layer(options: ConnectOptions): Layer.Layer<Kv, TransportError> {
    return Layer.unwrap(
      Effect.sync(() => {
        const target = resolveTarget(options)
        const rpc = RpcNode.layer.pipe(
          Layer.provide(
            Transport.layerUdp({ bind: options.bind ?? clientBind(target.addresses), key: target.clusterKey }),
          ),
        )
        return Layer.effect(
          Kv,
          Effect.flatMap(
            RpcNode.useSync((node) => node),
            (node) => Effect.map(clientFor(node, target, options), ({ client, group }) => kvShapeOf(client, group)),
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
  /** Ends every watch when the clerk closes. */
  const closed = Deferred.makeUnsafe<void>()
  /** Scopes of the leases and locks held here, closed by `close()`. */
  const held = new Set<Scope.Closeable>()
  const release = (scope: Scope.Closeable): Promise<void> => {
    held.delete(scope)
    // Bounded: a lease nobody renews ends by itself, a lock with it.
    return run(Effect.ignore(Effect.timeoutOption(Scope.close(scope, Exit.void), Duration.seconds(5))))
  }
  /** Runs a scoped call; its scope stays open (and is closed by `close()`) until released. */
  const hold = async <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<readonly [A, Scope.Closeable]> => {
    const scope = Scope.makeUnsafe()
    held.add(scope)
    try {
      // A wait for a lock ends when the clerk closes, as its other operations do.
      const untilClosed = Effect.andThen(Deferred.await(closed), Effect.interrupt)
      return [await run(Effect.raceFirst(Scope.provide(scope)(effect), untilClosed)), scope]
    } catch (error) {
      await release(scope)
      throw error
    }
  }
  /** A Promise that resolves with the lease's loss (and never rejects, so nobody has to catch it). */
  const lostOf = (lost: Effect.Effect<never, LeaseLost>): Promise<LeaseLost> =>
    new Promise((resolve) => {
      runtime.runFork(Effect.catch(lost, (error) => Effect.sync(() => resolve(error))))
    })
  const lockHandle = (lock: HeldLock, scope: Scope.Closeable): LockHandle => ({
    name: lock.name,
    key: lock.key,
    token: lock.token,
    lease: lock.lease,
    lost: lostOf(lock.lost),
    unlock: async () => {
      if (!held.has(scope)) return
      try {
        await run(lock.unlock)
      } finally {
        await release(scope)
      }
    },
  })
  function put(key: string, value: string): Promise<void>
  function put(key: string, value: string, condition: WriteCondition & LeaseOption): Promise<CasResult>
  function put(key: string, value: string, condition: WriteCondition): Promise<CasResult>
  function put(key: string, value: string, options: LeaseOption): Promise<void>
  function put(key: string, value: string, options?: WriteCondition | LeaseOption) {
    return options === undefined ? run(client.put(key, value)) : run(client.put(key, value, options as WriteCondition))
  }
  function del(key: string): Promise<void>
  function del(key: string, condition: WriteCondition): Promise<CasResult>
  function del(key: string, condition?: WriteCondition) {
    return condition === undefined ? run(client.delete(key)) : run(client.delete(key, condition))
  }
  const watch = (target: WatchTarget, options?: WatchOptions): AsyncIterable<WatchItem> =>
    Stream.toAsyncIterableWith(
      (client.watch as (t: WatchTarget, o?: WatchOptions) => Stream.Stream<WatchItem, unknown>)(target, options).pipe(
        Stream.interruptWhen(Deferred.await(closed)),
      ),
      Context.empty(),
    )
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
    watch: watch as Clerk["watch"],
    grant: (ttlMs) => run(client.grant(ttlMs)),
    keepAlive: (lease) => run(client.keepAlive(lease)),
    revoke: (lease) => run(client.revoke(lease)),
    timeToLive: (lease) => run(client.timeToLive(lease)),
    leases: () => run(client.leases()),
    lease: async (ttlMs) => {
      const [kept, scope] = await hold(client.lease(ttlMs))
      return {
        id: kept.id,
        ttlMs: kept.ttlMs,
        lost: lostOf(kept.lost),
        revoke: async () => {
          try {
            await run(kept.revoke)
          } finally {
            await release(scope)
          }
        },
        release: async () => {
          await run(kept.release)
          await release(scope)
        },
      }
    },
    lock: async (name, options) => {
      const [lock, scope] = await hold(client.lock(name, options))
      return lockHandle(lock, scope)
    },
    campaign: async (name, value, options) => {
      const [lock, scope] = await hold(client.campaign(name, value, options))
      const handle = lockHandle(lock, scope)
      return { ...handle, proclaim: (next) => run(client.proclaim(lock, next)), resign: handle.unlock }
    },
    leader: (name) => run(client.leader(name)),
    close: async () => {
      Deferred.doneUnsafe(closed, Exit.void)
      await Promise.all([...held].map(release))
      await runtime.dispose()
    },
  }
}
