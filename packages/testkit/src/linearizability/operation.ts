/**
 * One call on the kv store. Each touches one key, except a transaction, which touches every key it
 * names: the checker checks keys touched together as one object (see checkLinearizable).
 */
export type KvInput =
  | { readonly op: "get"; readonly key: string }
  | { readonly op: "put"; readonly key: string; readonly value: string }
  | { readonly op: "append"; readonly key: string; readonly value: string }
  | { readonly op: "delete"; readonly key: string }
  /**
   * A conditional put: `value` replaces the key's value if it is `expected` (the store's `ifValue`).
   * `expected` must not be empty: the model does not tell an absent key from an empty value. Its
   * output is `casApplied` or `casRejected`.
   */
  | { readonly op: "cas"; readonly key: string; readonly expected: string; readonly value: string }
  /**
   * A transaction, done atomically: when every compare holds, the success ops run in order, otherwise the
   * failure ops. Its output is `txnSucceeded` or `txnFailed`, and its `reads` are what the branch's gets
   * read, in order ("" for an absent key). `key` is one of its keys, for display.
   */
  | {
      readonly op: "txn"
      readonly key: string
      readonly compare: readonly TxnCompare[]
      readonly success: readonly TxnOp[]
      readonly failure: readonly TxnOp[]
    }

/**
 * A transaction's test of one key, as the store's compares: on the value (`==`, `!=`; an absent key
 * holds no value, so neither holds on it) or on the version (writes since the key was created; 0 when
 * absent). Revisions are not modelled: a revision is a counter shared by every key of a shard, so it
 * cannot be checked key group by key group. A client that compares a revision it read can be recorded
 * with the equivalent value compare when every write stores a value never written before.
 */
export type TxnCompare =
  | { readonly key: string; readonly target: "value"; readonly cmp: "==" | "!="; readonly value: string }
  | { readonly key: string; readonly target: "version"; readonly cmp: "==" | "!=" | "<" | ">"; readonly value: number }

/** An operation inside a transaction's branch: each sees the writes before it in the branch. */
export type TxnOp =
  | { readonly op: "get"; readonly key: string }
  | { readonly op: "put"; readonly key: string; readonly value: string }
  | { readonly op: "delete"; readonly key: string }

/** Every key a call touches: one, or a transaction's compared, read and written keys. */
export const inputKeys = (input: KvInput): string[] => {
  if (input.op !== "txn") return [input.key]
  const keys = new Set<string>([input.key])
  for (const c of input.compare) keys.add(c.key)
  for (const o of input.success) keys.add(o.key)
  for (const o of input.failure) keys.add(o.key)
  return [...keys]
}

/** The output of a `cas` whose condition held (the write was done). */
export const casApplied = "applied"
/** The output of a `cas` whose condition failed (nothing written). */
export const casRejected = "rejected"
/** The output of a `txn` whose compares all held (the success branch ran). */
export const txnSucceeded = "succeeded"
/** The output of a `txn` whose compares did not all hold (the failure branch ran). */
export const txnFailed = "failed"

/**
 * One operation as a client saw it: when it was invoked, when (if ever) the reply arrived, and what
 * the reply said. Times only need to be monotonic within one history; equal times count as overlapping.
 */
export interface Operation {
  readonly clientId: number
  readonly input: KvInput
  /** Invocation time. */
  readonly call: number
  /**
   * Response time. `Infinity` (or `undefined` at runtime) when the outcome is unknown: the client timed out
   * or crashed, so a write may have taken effect at any instant after `call`, or never.
   */
  readonly return: number
  /**
   * A get's value, a cas's `casApplied` or `casRejected`, a txn's `txnSucceeded` or `txnFailed`;
   * `undefined` for other writes, or when the reply never arrived.
   */
  readonly output?: string
  /** A txn's reads: one value per get of the branch that ran, in order ("" when absent). */
  readonly reads?: readonly string[]
}

export type Verdict =
  | { readonly ok: true }
  | {
      readonly ok: false
      /** The key at fault; for keys that transactions touch together, all of them, comma-separated. */
      readonly key: string
      /** A small failing sub-history of `key`, one operation per line, human readable. */
      readonly explanation: string
    }
