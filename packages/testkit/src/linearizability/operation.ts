/** One call on the kv store. Each touches exactly one key, which lets the checker split a history per key. */
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

/** The output of a `cas` whose condition held (the write was done). */
export const casApplied = "applied"
/** The output of a `cas` whose condition failed (nothing written). */
export const casRejected = "rejected"

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
  /** A get's value, a cas's `casApplied` or `casRejected`; `undefined` for other writes, or when the reply never arrived. */
  readonly output?: string
}

export type Verdict =
  | { readonly ok: true }
  | {
      readonly ok: false
      readonly key: string
      /** A small failing sub-history of `key`, one operation per line, human readable. */
      readonly explanation: string
    }
