/**
 * What a benchmark run measures: the workloads, the cells of the matrix (workload × concurrency ×
 * value size), and the messages between the orchestrator (run.ts) and the load process (load.ts).
 */

/** Plain reads and writes over preloaded keys: every run does these unless told otherwise. */
export const basicWorkloads = ["put", "get", "append", "mixed"] as const
/**
 * Coordination (issue 15), opt-in: `cas-incr` = each worker reads a counter and writes value + 1 if
 * its mod revision is unchanged, again on conflict (etcd: a Txn comparing `mod_revision`);
 * `list100` = list the 100 keys under a random one of LIST_PREFIXES prefixes (etcd: a prefix Range).
 */
export const coordinationWorkloads = ["cas-incr", "list100"] as const
export const workloads = [...basicWorkloads, ...coordinationWorkloads] as const
export type Workload = (typeof workloads)[number]

export const isWorkload = (name: string): name is Workload => (workloads as readonly string[]).includes(name)
export const isCoordination = (w: Workload): boolean => (coordinationWorkloads as readonly string[]).includes(w)

export interface Cell {
  readonly workload: Workload
  readonly concurrency: number
  /** The size of every value written (cas-incr writes decimal counters, whatever this says). */
  readonly valueBytes: number
  readonly warmupSeconds: number
  readonly seconds: number
  /** cas-incr only: how many counters the workers share (each increment picks one at random). */
  readonly counters?: number
}

/** list100: the store holds LIST_PREFIXES × LIST_KEYS_PER_PREFIX keys of LIST_VALUE_BYTES each. */
export const LIST_PREFIXES = 100
export const LIST_KEYS_PER_PREFIX = 100
export const LIST_VALUE_BYTES = 100

export interface LatencyFigures {
  readonly ops: number
  readonly errors: number
  /** cas-incr (0 elsewhere): conditional writes answered in the window, and those that found the counter changed. */
  readonly conditionalWrites: number
  readonly conflicts: number
  /** cas-incr: increments still retrying when the cell ended, and the longest any of them had waited. */
  readonly unfinished: number
  readonly oldestUnfinishedMs: number
  readonly opsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  readonly maxMs: number
}

export interface CellResult extends LatencyFigures {
  readonly cell: Cell
  /** CPU cores used during the measured window, by process name (servers and the load process). */
  readonly cpu: Readonly<Record<string, number>>
  /** Durable writes of each kv server during the window (from its metrics endpoint). */
  readonly fsync?: Readonly<Record<string, FsyncFigures>>
  /** What the load process checked after the cell (cas-incr: no lost or extra increments; list100: every listing). */
  readonly verdict?: Verdict
}

/** The outcome of a cell's correctness check: a bench that hides lost updates measures nothing. */
export interface Verdict {
  readonly ok: boolean
  readonly summary: string
}

export interface FsyncFigures {
  readonly perSecond: number
  readonly meanMs: number
}

/** How the load process reaches a target. */
export type ClientSpec =
  | { readonly kind: "kvraft"; readonly servers: readonly string[] }
  | { readonly kind: "shardkv"; readonly controllers: readonly string[] }
  | { readonly kind: "etcd"; readonly endpoints: readonly string[] }

export type ToLoad = {
  readonly type: "run"
  readonly client: ClientSpec
  readonly cells: readonly Cell[]
  readonly keys: number
  /** Unmeasured mixed load before the first cell, so no cell pays for a cold JIT or cold caches. */
  readonly targetWarmupSeconds: number
}

export type FromLoad =
  | { readonly type: "measuring"; readonly index: number }
  | {
      readonly type: "cell"
      readonly index: number
      readonly figures: LatencyFigures
      readonly loadCpu: number
      readonly verdict?: Verdict
    }
  | { readonly type: "done" }
  | { readonly type: "failed"; readonly message: string }

/** Appends per key before a worker moves to a fresh key, so appended values stay bounded. */
export const APPENDS_PER_KEY = 10

export interface Matrix {
  /** Unmeasured load on a freshly started target before its first cell. */
  readonly targetWarmupSeconds: number
  readonly workloads: readonly Workload[]
  /** Workers in the basic workloads' cells. */
  readonly concurrency: readonly number[]
  readonly valueBytes: readonly number[]
  /** Workers in the coordination workloads' cells (issue 15 asks for 64). */
  readonly coordinationConcurrency: readonly number[]
  /** cas-incr: the counter counts, one cell each (1: every worker on one key; 64: little contention). */
  readonly counters: readonly number[]
  readonly warmupSeconds: number
  readonly seconds: number
}

export const fullMatrix: Matrix = {
  targetWarmupSeconds: 3,
  workloads: basicWorkloads,
  concurrency: [1, 16, 64, 256],
  valueBytes: [100, 4096],
  coordinationConcurrency: [64],
  counters: [1, 64],
  warmupSeconds: 1,
  seconds: 3,
}

/** The headline cells only: about 30 s in all for kvraft, etcd and both sharded clusters. */
export const quickMatrix: Matrix = {
  targetWarmupSeconds: 0.5,
  workloads: basicWorkloads,
  concurrency: [1, 64],
  valueBytes: [100],
  coordinationConcurrency: [64],
  counters: [1, 64],
  warmupSeconds: 0.2,
  seconds: 0.7,
}

/** In a quick run the sharded clusters (up to 12 processes to start) get put and get at 64 only. */
export const quickShardedMatrix: Matrix = { ...quickMatrix, workloads: ["put", "get"], concurrency: [64] }

/**
 * Cells in the order they run: the basic workloads by value size, so each size is preloaded once;
 * then the coordination workloads, which have their own keys and sizes.
 */
export const cellsOf = (m: Matrix): Cell[] => {
  const cells: Cell[] = []
  const timing = { warmupSeconds: m.warmupSeconds, seconds: m.seconds }
  const basic = m.workloads.filter((w) => !isCoordination(w))
  for (const valueBytes of m.valueBytes)
    for (const workload of basic)
      for (const concurrency of m.concurrency) cells.push({ workload, concurrency, valueBytes, ...timing })
  if (m.workloads.includes("cas-incr"))
    for (const concurrency of m.coordinationConcurrency)
      for (const counters of m.counters)
        cells.push({ workload: "cas-incr", concurrency, valueBytes: LIST_VALUE_BYTES, counters, ...timing })
  if (m.workloads.includes("list100"))
    for (const concurrency of m.coordinationConcurrency)
      cells.push({ workload: "list100", concurrency, valueBytes: LIST_VALUE_BYTES, ...timing })
  return cells
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`

/** What a cell's size column says: the value size, or the counters of a cas-incr cell. */
export const cellSize = (c: Cell): string =>
  c.workload === "cas-incr"
    ? plural(c.counters ?? 1, "key")
    : c.valueBytes >= 1024
      ? `${c.valueBytes / 1024} KiB`
      : `${c.valueBytes} B`

export const describeCell = (c: Cell): string =>
  `${c.workload.padEnd(8)} c=${String(c.concurrency).padEnd(3)} ${cellSize(c)}`
