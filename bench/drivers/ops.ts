import { APPENDS_PER_KEY, type Cell } from "../plan.ts"

export type OpKind = "put" | "get" | "append"

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
    }
  }
}

export const keyName = (n: number): string => `key-${String(n).padStart(6, "0")}`

/** The value every write of a cell carries. */
export const valueOfBytes = (bytes: number): string => "v".repeat(bytes)
