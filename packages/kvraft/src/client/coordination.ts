/**
 * Types and helpers of the coordination calls (entries with metadata, conditional writes,
 * transactions, listings), shared by the kvraft and shardkv clients.
 */
import { Effect, Schema } from "effect"
import type { KvCompare, KvCondition, KvEntry, KvListEntry, KvReply, KvTxnOp } from "../stateMachine/index.ts"
import { fromKvErrorReply, type KvClientError } from "./errors.ts"

/** A conditional write's condition: one of these, tested against the key's current entry. */
export type KvWriteCondition =
  /** The key's version is this (0: the key is absent). */
  | { readonly ifVersion: number }
  /** The key's last write was at this revision (0: the key is absent). */
  | { readonly ifModRevision: number }
  /** The key exists and holds exactly this value. */
  | { readonly ifValue: string }
  /** The key does not exist. */
  | { readonly ifAbsent: true }

export const toCondition = (condition: KvWriteCondition): KvCondition => {
  if ("ifVersion" in condition) return { target: "version", cmp: "==", value: condition.ifVersion }
  if ("ifModRevision" in condition) return { target: "modRevision", cmp: "==", value: condition.ifModRevision }
  if ("ifValue" in condition) return { target: "value", cmp: "==", value: condition.ifValue }
  return { target: "version", cmp: "==", value: 0 }
}

export interface CasResult {
  /** Whether the condition held and the write was done. */
  readonly applied: boolean
  /** The store's (the shard's) revision after the call: the write's own revision when applied. */
  readonly revision: number
  /** When not applied: the key's current entry (undefined when absent). */
  readonly entry?: KvEntry | undefined
}

export interface TxnRequest {
  readonly compare: readonly KvCompare[]
  readonly success: readonly KvTxnOp[]
  readonly failure?: readonly KvTxnOp[]
}

export interface TxnResult {
  /** Whether every compare held (the success ops ran) or not (the failure ops ran). */
  readonly succeeded: boolean
  readonly revision: number
  /** One per op run: what a `get` read (undefined when absent), undefined for a write. */
  readonly entries: readonly (KvEntry | undefined)[]
}

export interface ListOptions {
  /** Only keys above this one: the `next` of the previous page. */
  readonly after?: string | undefined
  /** At most this many entries (the servers cap a page at 1,000 entries and ~256 KiB). */
  readonly limit?: number | undefined
  /** Leave values out. */
  readonly keysOnly?: boolean | undefined
}

export interface ListPage {
  readonly entries: readonly KvListEntry[]
  /** Pass as `after` for the next page; undefined when the listing is complete. */
  readonly next?: string | undefined
}

/** The transaction named keys of more than one shard. Nothing was written. */
export class CrossShard extends Schema.TaggedError<CrossShard>()("CrossShard", { message: Schema.String }) {}

/** The request cannot be applied whatever the state (a transaction with too many ops, ...). Nothing was written. */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  message: Schema.String,
}) {}

/** The lease named (a put's, a transaction put's, a keep-alive's) was revoked, expired or never granted. Nothing was written. */
export class LeaseNotFound extends Schema.TaggedError<LeaseNotFound>()("LeaseNotFound", { message: Schema.String }) {}

export type KvCoordinationError = KvClientError | CrossShard | InvalidRequest | LeaseNotFound

export const fromCoordinationErrorReply = (reply: {
  readonly error: string
  readonly message: string
}): Effect.Effect<never, KvCoordinationError> => {
  if (reply.error === "CrossShard") return Effect.fail(new CrossShard({ message: reply.message }))
  if (reply.error === "InvalidRequest") return Effect.fail(new InvalidRequest({ message: reply.message }))
  if (reply.error === "LeaseNotFound") return Effect.fail(new LeaseNotFound({ message: reply.message }))
  return fromKvErrorReply(reply)
}

export const txnOp = (request: TxnRequest) => {
  const firstKey = request.compare[0]?.key ?? request.success[0]?.key ?? request.failure?.[0]?.key ?? ""
  return {
    op: "txn",
    key: firstKey,
    compare: request.compare,
    success: request.success,
    failure: request.failure ?? [],
  } as const
}

const entryOrUndefined = (entry: KvEntry | null | undefined): KvEntry | undefined => entry ?? undefined

export const casResult = (reply: KvReply | undefined): Effect.Effect<CasResult> =>
  reply?.kind === "cas"
    ? Effect.succeed({ applied: reply.applied, revision: reply.revision, entry: entryOrUndefined(reply.entry) })
    : Effect.die(new Error(`a conditional write got ${JSON.stringify(reply)}`))

export const txnResult = (reply: KvReply | undefined): Effect.Effect<TxnResult> =>
  reply?.kind === "txn"
    ? Effect.succeed({
        succeeded: reply.succeeded,
        revision: reply.revision,
        entries: reply.entries.map(entryOrUndefined),
      })
    : Effect.die(new Error(`a transaction got ${JSON.stringify(reply)}`))
