/**
 * The sequential specification of one key of the kv store, as the search needs it: a state, and a step
 * that either accepts an operation (giving the next state) or rejects it.
 *
 * Values only grow under append, and the search compares states constantly, so a state carries a
 * polynomial hash of its value that append updates in O(1): h(s + a) = h(s)·P^|a| + h(a) (mod 2^32).
 * Equal hashes are confirmed by comparing the strings; different hashes prove different values.
 */
export interface KvState {
  readonly value: string
  readonly hash: number
}

export const emptyState: KvState = { value: "", hash: 0 }

/**
 * Stands for every value that no get can observe any more: the search replaces such a value by this one
 * state, so that the orders of appends that a later put or delete wipes out all count as one state.
 * Its hash (1) differs from the hash of "" (0), so no get accepts it and no output starts with it;
 * appends leave it dead, puts and deletes replace it.
 */
export const deadState: KvState = { value: "", hash: 1 }

const hashBase = 0x01000193

export const hashString = (text: string): number => {
  let h = 0
  for (let i = 0; i < text.length; i++) h = (Math.imul(h, hashBase) + text.charCodeAt(i)) | 0
  return h >>> 0
}

/** P^length mod 2^32: what a hash is multiplied by when `length` characters are appended after it. */
const hashShift = (length: number): number => {
  let power = 1
  for (let i = 0; i < length; i++) power = Math.imul(power, hashBase)
  return power >>> 0
}

/** The hashes of every prefix of `text`: entry i is hashString(text.slice(0, i)). */
export const prefixHashes = (text: string): Uint32Array => {
  const hashes = new Uint32Array(text.length + 1)
  let h = 0
  for (let i = 0; i < text.length; i++) {
    h = (Math.imul(h, hashBase) + text.charCodeAt(i)) | 0
    hashes[i + 1] = h >>> 0
  }
  return hashes
}

export const sameState = (a: KvState, b: KvState): boolean =>
  a === b || (a.hash === b.hash && a.value.length === b.value.length && a.value === b.value)

/** A cas's kind says its outcome: applied, rejected, or unknown (it may have applied, or never run). */
export const OpKind = { Get: 0, Put: 1, Append: 2, Delete: 3, CasApplied: 4, CasRejected: 5, CasUnknown: 6 } as const
export type OpKind = (typeof OpKind)[keyof typeof OpKind]

/** One operation of a key's sub-history with everything the step needs precomputed. */
export interface ModelOp {
  readonly kind: OpKind
  /** get: the returned value; put and cas: the new value; append: the suffix; delete: "". */
  readonly text: string
  readonly textHash: number
  /** append only: the multiplier for the old value's hash. */
  readonly textShift: number
  /** put and cas: the state it installs (shared, so a put allocates nothing). */
  readonly putState: KvState
  /** cas only: the value its condition asks for ("" for the other kinds). */
  readonly expected: string
}

export const isCas = (kind: OpKind): boolean =>
  kind === OpKind.CasApplied || kind === OpKind.CasRejected || kind === OpKind.CasUnknown

export const makeModelOp = (kind: OpKind, text: string, expected = ""): ModelOp => {
  const textHash = hashString(text)
  return {
    kind,
    text,
    textHash,
    textShift: kind === OpKind.Append ? hashShift(text.length) : 1,
    putState: kind === OpKind.Put || isCas(kind) ? { value: text, hash: textHash } : emptyState,
    expected,
  }
}

/** The next state, or undefined when the model rejects the operation in `state`. */
export const step = (state: KvState, op: ModelOp): KvState | undefined => {
  switch (op.kind) {
    case OpKind.Get:
      return state.hash === op.textHash && state.value.length === op.text.length && state.value === op.text
        ? state
        : undefined
    case OpKind.Put:
      return op.putState
    case OpKind.Append:
      if (state === deadState) return deadState
      return {
        value: state.value + op.text,
        hash: (Math.imul(state.hash, op.textShift) + op.textHash) >>> 0,
      }
    case OpKind.Delete:
      return emptyState
    // No cas is pending while the state is dead (see cannotBeObserved), so none meets it.
    case OpKind.CasApplied:
      return state !== deadState && state.value === op.expected ? op.putState : undefined
    case OpKind.CasRejected:
      return state !== deadState && state.value !== op.expected ? state : undefined
    case OpKind.CasUnknown:
      if (state === deadState) return undefined
      return state.value === op.expected ? op.putState : state
  }
}
