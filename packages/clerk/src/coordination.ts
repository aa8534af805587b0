/**
 * The coordination calls as the clerk offers them: conditional `put`/`delete` as an optional third
 * argument of the plain writes, and `listAll`, the whole listing of a prefix page after page (a
 * Stream for Effect apps, an async iterator for Bun apps).
 */
import type {
  CasResult,
  KvClientError,
  KvClientShape,
  KvCoordinationError,
  KvEntry,
  KvListEntry,
  KvWriteCondition,
  ListOptions,
  ListPage,
  TxnRequest,
  TxnResult,
} from "@kv/kvraft"
import { Effect, Option, Stream } from "effect"

/** `{ ifVersion }`, `{ ifModRevision }` (0: the key is absent), `{ ifValue }` or `{ ifAbsent: true }`. */
export type WriteCondition = KvWriteCondition

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
  /** Puts `value` only if `condition` holds; `entry` is the key's current entry when it did not. */
  put(key: string, value: string, condition: WriteCondition): Effect.Effect<CasResult, KvClientError>
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

/** The clerk's Effect API over a low-level client of either service. */
export const kvShapeOf = (client: KvClientShape): KvShape => {
  function put(key: string, value: string): Effect.Effect<void, KvClientError>
  function put(key: string, value: string, condition: WriteCondition): Effect.Effect<CasResult, KvClientError>
  function put(key: string, value: string, condition?: WriteCondition) {
    return condition === undefined ? client.put(key, value) : client.putIf(key, value, condition)
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
    put,
    append: client.append,
    delete: del,
    txn: client.txn,
    list: client.list,
    listAll: (prefix, options) => listAllStream(client, prefix, options),
  }
}
