/**
 * The coordination calls as the clerk offers them: conditional `put`/`delete` as an optional third
 * argument of the plain writes (which also takes the lease to attach a key to), `listAll`, the
 * whole listing of a prefix page after page (a Stream for Effect apps, an async iterator for Bun
 * apps), watch, and, on the kvraft service only, leases, locks and elections (on the sharded
 * service they fail with `KvraftOnly` before anything is sent).
 */
import type {
  CasResult,
  Holder,
  KvClientError,
  KvClientShape,
  KvCoordinationError,
  KvEntry,
  KvGroupClientShape,
  KvListEntry,
  KvWriteCondition,
  LeaseGrant,
  LeaseStatus,
  ListOptions,
  ListPage,
  LockTimeout,
  TxnRequest,
  TxnResult,
  WatchError,
  WatchEvent,
  WatchItem,
  WatchOptions,
  WatchTarget,
} from "@kv/kvraft"
import { Effect, Option, type Scope, Stream } from "effect"
import { KvraftOnly } from "./errors.ts"
import { type KeptLease, keepLease } from "./leaseKeeper.ts"
import { type HeldLock, holderOf, holdLock, type LockOptions, proclaimAs } from "./locks.ts"

/** `{ ifVersion }`, `{ ifModRevision }` (0: the key is absent), `{ ifValue }` or `{ ifAbsent: true }`. */
export type WriteCondition = KvWriteCondition

/** Attach the key to a lease: it is deleted when the lease ends (kvraft only). */
export interface LeaseOption {
  readonly lease: number
}

/** A lease, lock or election call's errors: the service's, or `KvraftOnly` on the sharded service. */
export type LeaseCallError = KvCoordinationError | KvraftOnly

export interface ListAllOptions {
  /** Leave values out. */
  readonly keysOnly?: boolean | undefined
  /** Entries asked for per page (default and ceiling 1,000). */
  readonly pageSize?: number | undefined
}

/** The Effect API of `@kv/clerk`: the operations of the Promise `Clerk`, as Effects. */
export interface KvShape {
  /** The id of the client's first session. */
  readonly clientId: number
  /** The value of `key`, or "" when it is absent. */
  get(key: string): Effect.Effect<string, KvClientError>
  /** The key's value and metadata, or undefined when it is absent. */
  getEntry(key: string): Effect.Effect<KvEntry | undefined, KvClientError>
  put(key: string, value: string): Effect.Effect<void, KvClientError>
  /** A conditional put that attaches the key to `lease` when it applies (kvraft only). */
  put(key: string, value: string, condition: WriteCondition & LeaseOption): Effect.Effect<CasResult, LeaseCallError>
  /** Puts `value` only if `condition` holds; `entry` is the key's current entry when it did not. */
  put(key: string, value: string, condition: WriteCondition): Effect.Effect<CasResult, KvClientError>
  /** Puts the key attached to `lease`: deleted when the lease ends (kvraft only; `LeaseNotFound` if it has). */
  put(key: string, value: string, options: LeaseOption): Effect.Effect<void, LeaseCallError>
  append(key: string, value: string): Effect.Effect<void, KvClientError>
  delete(key: string): Effect.Effect<void, KvClientError>
  /** Deletes the key only if `condition` holds. */
  delete(key: string, condition: WriteCondition): Effect.Effect<CasResult, KvClientError>
  /** If every compare holds the success ops run, else the failure ops: atomically, at one revision. */
  txn(request: TxnRequest): Effect.Effect<TxnResult, KvCoordinationError>
  /** One page of the keys under `prefix`, in byte order; pass `next` as `after` for the following one. */
  list(prefix: string, options?: ListOptions): Effect.Effect<ListPage, KvClientError>
  /** Every key under `prefix`, in byte order, one page at a time. */
  listAll(prefix: string, options?: ListAllOptions): Stream.Stream<KvListEntry, KvClientError>
  /**
   * The changes of a key (or of every key under `{ prefix }`) in revision order, with no gap and no
   * repeat, resuming by itself after failures; ends only with `Compacted` or `WatchRefused`. With
   * `{ progress: true }`, progress notifications come in the stream too.
   */
  watch(
    target: WatchTarget,
    options?: WatchOptions & { readonly progress?: false },
  ): Stream.Stream<WatchEvent, WatchError>
  watch(target: WatchTarget, options: WatchOptions & { readonly progress: true }): Stream.Stream<WatchItem, WatchError>
  /** A new lease of `ttlMs` (1 s to 1 day). Renew it yourself, or use `lease`. */
  grant(ttlMs: number): Effect.Effect<LeaseGrant, LeaseCallError>
  /** Renews the lease to its full TTL once; `LeaseNotFound` once it has ended. */
  keepAlive(lease: number): Effect.Effect<LeaseGrant, LeaseCallError>
  /** Ends the lease now and deletes its keys; `LeaseNotFound` if it had already ended. */
  revoke(lease: number): Effect.Effect<void, LeaseCallError>
  /** The lease's TTL, time left (never less than the truth) and keys; undefined once it ended. */
  timeToLive(lease: number): Effect.Effect<LeaseStatus | undefined, KvClientError | KvraftOnly>
  /** Every lease (keys left out). */
  leases(): Effect.Effect<readonly LeaseStatus[], KvClientError | KvraftOnly>
  /** A lease granted now and kept alive by this client until the scope closes, then revoked. */
  lease(ttlMs: number): Effect.Effect<KeptLease, LeaseCallError, Scope.Scope>
  /** Takes lock `name`, waiting while another client holds it; released when the scope closes (or by `unlock`). */
  lock(name: string, options?: LockOptions): Effect.Effect<HeldLock, LeaseCallError | LockTimeout, Scope.Scope>
  /** Becomes leader of election `name` with `value`, waiting while another leads; resign with `unlock` (or the scope). */
  campaign(
    name: string,
    value: string,
    options?: LockOptions,
  ): Effect.Effect<HeldLock, LeaseCallError | LockTimeout, Scope.Scope>
  /** The current leader of election `name` (or holder of lock `name`): its value and token, if any. */
  leader(name: string): Effect.Effect<Holder | undefined, LeaseCallError>
  /** The leader changes its value; false if it no longer leads. */
  proclaim(leadership: HeldLock, value: string): Effect.Effect<boolean, LeaseCallError>
}

/** Every entry under `prefix`, page after page, each page asked for once the previous one is consumed. */
export const listAllStream = (
  client: Pick<KvClientShape, "list">,
  prefix: string,
  options: ListAllOptions = {},
): Stream.Stream<KvListEntry, KvClientError> =>
  Stream.paginate(Option.none<string>(), (after) =>
    client
      .list(prefix, { after: Option.getOrUndefined(after), limit: options.pageSize, keysOnly: options.keysOnly })
      .pipe(Effect.map((page) => [page.entries, Option.map(Option.fromUndefinedOr(page.next), Option.some)] as const)),
  )

const hasCondition = (options: object): options is WriteCondition =>
  "ifVersion" in options || "ifModRevision" in options || "ifValue" in options || "ifAbsent" in options

const leaseOf = (options: object): number | undefined =>
  "lease" in options && typeof options.lease === "number" ? options.lease : undefined

/** The clerk's Effect API over a low-level client of either service (`group` is the kvraft client, which has leases). */
export const kvShapeOf = (client: KvClientShape, group?: KvGroupClientShape): KvShape => {
  const onKvraft = <A, E, R>(feature: string, f: (group: KvGroupClientShape) => Effect.Effect<A, E, R>) =>
    group === undefined ? Effect.fail(new KvraftOnly({ feature })) : f(group)
  function put(key: string, value: string, options?: WriteCondition | LeaseOption | (WriteCondition & LeaseOption)) {
    if (options === undefined) return client.put(key, value)
    const lease = leaseOf(options)
    if (lease === undefined) return hasCondition(options) ? client.putIf(key, value, options) : client.put(key, value)
    return hasCondition(options)
      ? onKvraft("leases", (g) => g.leases.putIf(key, value, options, lease))
      : onKvraft("leases", (g) => g.leases.put(key, value, lease))
  }
  function del(key: string): Effect.Effect<void, KvClientError>
  function del(key: string, condition: WriteCondition): Effect.Effect<CasResult, KvClientError>
  function del(key: string, condition?: WriteCondition) {
    return condition === undefined ? client.delete(key) : client.deleteIf(key, condition)
  }
  return {
    clientId: client.clientId,
    get: client.get,
    getEntry: client.getEntry,
    put: put as KvShape["put"],
    append: client.append,
    delete: del,
    txn: client.txn,
    list: client.list,
    listAll: (prefix, options) => listAllStream(client, prefix, options),
    watch: client.watch,
    grant: (ttlMs) => onKvraft("leases", (g) => g.leases.grant(ttlMs)),
    keepAlive: (lease) => onKvraft("leases", (g) => g.leases.keepAlive(lease)),
    revoke: (lease) => onKvraft("leases", (g) => g.leases.revoke(lease)),
    timeToLive: (lease) => onKvraft("leases", (g) => g.leases.timeToLive(lease)),
    leases: () => onKvraft("leases", (g) => g.leases.list()),
    lease: (ttlMs) => onKvraft("leases", (g) => keepLease(g.leases, ttlMs)),
    lock: (name, options) => onKvraft("locks", (g) => holdLock(g, name, "", options)),
    campaign: (name, value, options) => onKvraft("elections", (g) => holdLock(g, name, value, options)),
    leader: (name) => onKvraft("elections", (g) => holderOf(g, name)),
    proclaim: (leadership, value) => onKvraft("elections", (g) => proclaimAs(g, leadership, value)),
  }
}
