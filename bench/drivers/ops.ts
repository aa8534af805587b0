import { APPENDS_PER_KEY, type Cell, LIST_KEYS_PER_PREFIX, LIST_PREFIXES } from "../plan.ts"

/** `cas-incr`: read the counter `key`, write value + 1 if unchanged, again on conflict. `list`: list the prefix `key`. */
export type OpKind = "put" | "get" | "append" | "cas-incr" | "list"

export interface Op {
  readonly kind: OpKind
  readonly key: string
}

/** xorshift32: a cheap, seeded stream per worker, so runs pick the same keys in the same order. */
const nextRandom = (state: Uint32Array, w: number): number => {
  let x = state[w]!
  x ^= x << 13
  x ^= x >>> 17
  x ^= x << 5
  state[w] = x >>> 0
  return state[w]!
}

/**
 * Which operation each worker does next. put / get / mixed pick uniformly among the preloaded keys;
 * append gives every worker its own keys and moves to a fresh one every APPENDS_PER_KEY appends, so
 * values stay small and workers never contend (etcd's get + compare-and-swap would retry).
 */
export class OpSource {
  private readonly random: Uint32Array
  private readonly appended: Uint32Array

  constructor(
    private readonly cell: Cell,
    private readonly cellIndex: number,
    private readonly keys: number,
  ) {
    // xorshift must not start at 0.
    this.random = new Uint32Array(cell.concurrency).map((_, w) => ((w + 1) * 2_654_435_761 + cellIndex * 97) >>> 0 || 1)
    this.appended = new Uint32Array(cell.concurrency)
  }

  next(worker: number): Op {
    const r = nextRandom(this.random, worker)
    switch (this.cell.workload) {
      case "put":
        return { kind: "put", key: keyName(r % this.keys) }
      case "get":
        return { kind: "get", key: keyName(r % this.keys) }
      case "mixed":
        return { kind: (r & 1) === 0 ? "get" : "put", key: keyName((r >>> 1) % this.keys) }
      case "append": {
        const n = this.appended[worker]!
        this.appended[worker] = n + 1
        return { kind: "append", key: `append-${this.cellIndex}-${worker}-${Math.floor(n / APPENDS_PER_KEY)}` }
      }
      case "cas-incr":
        return { kind: "cas-incr", key: counterName(this.cellIndex, r % (this.cell.counters ?? 1)) }
      case "list100":
        return { kind: "list", key: listPrefix(r % LIST_PREFIXES) }
      case "watch":
        throw new Error("watch cells have writers and watchers of their own (drivers/watchCell.ts)")
    }
  }
}

/** The counters of one cas-incr cell: fresh keys per cell, absent (0) until first incremented. */
export const counterName = (cellIndex: number, n: number): string => `counter-${cellIndex}-${n}`

export const counterNames = (cellIndex: number, counters: number): string[] =>
  Array.from({ length: counters }, (_, n) => counterName(cellIndex, n))

/** Padded so that no prefix is a prefix of another (`dir-001/` and `dir-010/`). */
export const listPrefix = (p: number): string => `dir-${String(p).padStart(3, "0")}/`

const memberKey = (prefix: string, k: number): string => `${prefix}member-${String(k).padStart(3, "0")}`

export const listKeyName = (p: number, k: number): string => memberKey(listPrefix(p), k)

/** Every key list100 reads, preloaded before its first cell. */
export const listKeys = (): string[] =>
  Array.from({ length: LIST_PREFIXES * LIST_KEYS_PER_PREFIX }, (_, n) =>
    listKeyName(Math.floor(n / LIST_KEYS_PER_PREFIX), n % LIST_KEYS_PER_PREFIX),
  )

/**
 * Why a listing of `prefix` is wrong, or undefined when it holds exactly the prefix's preloaded
 * keys in byte order (the keys are ASCII, so `<` is byte order here).
 */
export const listingProblem = (prefix: string, keys: readonly string[]): string | undefined => {
  if (keys.length !== LIST_KEYS_PER_PREFIX) return `${prefix}: ${keys.length} keys, expected ${LIST_KEYS_PER_PREFIX}`
  for (let k = 0; k < keys.length; k++) {
    if (keys[k] !== memberKey(prefix, k)) return `${prefix}: key ${k} is ${keys[k]}`
  }
  return undefined
}

/** A counter's value as stored: absent is 0; anything but a decimal integer is a defect of the store. */
export const counterValue = (key: string, stored: string | undefined): number => {
  if (stored === undefined) return 0
  if (!/^\d+$/.test(stored)) throw new Error(`counter ${key} holds ${JSON.stringify(stored)}, not a number`)
  return Number(stored)
}

export const keyName = (n: number): string => `key-${String(n).padStart(6, "0")}`

/** The value every write of a cell carries. */
export const valueOfBytes = (bytes: number): string => "v".repeat(bytes)
