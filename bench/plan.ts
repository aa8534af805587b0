/**
 * What a benchmark run measures: the workloads, the cells of the matrix (workload × concurrency ×
 * value size), and the messages between the orchestrator (run.ts) and the load process (load.ts).
 */

/** Plain reads and writes over preloaded keys: every run does these unless told otherwise. */
export const basicWorkloads = ["put", "get", "append", "mixed"] as const
/**
 * Coordination (issues 15 and 16), opt-in: `cas-incr` = each worker reads a counter and writes
 * value + 1 if its mod revision is unchanged, again on conflict (etcd: a Txn comparing
 * `mod_revision`); `list100` = list the 100 keys under a random one of LIST_PREFIXES prefixes (etcd:
 * a prefix Range); `watch` = `watchers` prefix watches while writers put to the watched prefixes
 * (etcd: its Watch API), checked for every event of each watcher's range once and in order.
 */
export const coordinationWorkloads = ["cas-incr", "list100", "watch"] as const
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
  /** watch only: the watchers, spread evenly over `watchPrefixCount(watchers)` prefixes. */
  readonly watchers?: number
  /** watch only: writes per second over all writers (`concurrency`); 0 = each writer as fast as answered. */
  readonly writeRate?: number
}

/** list100: the store holds LIST_PREFIXES × LIST_KEYS_PER_PREFIX keys of LIST_VALUE_BYTES each. */
export const LIST_PREFIXES = 100
export const LIST_KEYS_PER_PREFIX = 100
export const LIST_VALUE_BYTES = 100

/** watch: at most this many watched prefixes (fewer watchers than this: one prefix each). */
export const WATCH_PREFIXES = 100

export const watchPrefixCount = (watchers: number): number => Math.min(WATCH_PREFIXES, watchers)

/** The watch workload's own figures; the cell's ops/s and percentiles are the deliveries'. */
export interface WatchFigures {
  readonly watchers: number
  readonly prefixes: number
  /** Writes answered inside the window, per second, and the writes that failed in it. */
  readonly writesPerSecond: number
  readonly writeErrors: number
  /** Delivery latency measured from the put's send instead of its answer (an upper bound). */
  readonly fromSendP50Ms: number
  readonly fromSendP99Ms: number
}

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
  /** The window's latencies in log-scale bins (lib/latency.ts), so that rounds can be pooled. */
  readonly histogram?: LatencyHistogram
}

/** [bin, count] pairs, bins ascending: bin b holds latencies in [1 µs × 1.01^b, 1 µs × 1.01^(b+1)). */
export type LatencyHistogram = readonly (readonly [number, number])[]

/** Percentiles of every round's operations of a cell taken together (`--rounds N`). */
export interface PooledLatency extends Pick<LatencyFigures, "ops" | "p50Ms" | "p99Ms" | "p999Ms"> {
  readonly rounds: number
}

export interface CellResult extends LatencyFigures {
  readonly cell: Cell
  /** CPU cores used during the measured window, by process name (servers and the load process). */
  readonly cpu: Readonly<Record<string, number>>
  /** Durable writes of each kv server during the window (from its metrics endpoint). */
  readonly fsync?: Readonly<Record<string, FsyncFigures>>
  /** What the load process checked after the cell (cas-incr: no lost or extra increments; list100: every listing; watch: every event once, in order). */
  readonly verdict?: Verdict
  /** watch: ops/s is events delivered per second over all watchers, the percentiles their delivery latency. */
  readonly watch?: WatchFigures
  /** With several rounds, on the median round: the latencies of all of them together. */
  readonly pooled?: PooledLatency
}

/** The outcome of a cell's correctness check: a bench that hides lost updates measures nothing. */
export interface Verdict {
  readonly ok: boolean
  readonly summary: string
}

export interface FsyncFigures {
  readonly perSecond: number
  readonly meanMs: number
  /** Datagrams the server process sent per second (every replica in it), when it exports them. */
  readonly datagramsPerSecond?: number
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
      readonly watch?: WatchFigures
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
  /** watch: the watchers of every watch cell (issue 16 asks for 1,000). */
  readonly watchers: number
  /** watch: the writers, one cell each. */
  readonly watchWriters: readonly number[]
  /** watch: writes/s over all writers, one cell each; 0 = as fast as the store answers. */
  readonly writeRates: readonly number[]
  readonly warmupSeconds: number
  readonly seconds: number
}

export const fullMatrix: Matrix = {
  // Bun's JIT keeps compiling a fresh kv server's hot paths for about 15 s under load (its JIT
  // thread took a fifth of a follower's CPU 6–10 s after start, a few percent after 20 s), and
  // that competes for the cores with every process of the run: measure the servers as they run
  // for days, not their first seconds.
  targetWarmupSeconds: 20,
  workloads: basicWorkloads,
  concurrency: [1, 16, 64, 256],
  valueBytes: [100, 4096],
  coordinationConcurrency: [64],
  counters: [1, 64],
  watchers: 1000,
  watchWriters: [16],
  writeRates: [1000, 0],
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
  watchers: 1000,
  watchWriters: [16],
  writeRates: [1000, 0],
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
  if (m.workloads.includes("watch"))
    for (const concurrency of m.watchWriters)
      for (const writeRate of m.writeRates)
        cells.push({
          workload: "watch",
          concurrency,
          valueBytes: LIST_VALUE_BYTES,
          watchers: m.watchers,
          writeRate,
          ...timing,
        })
  return cells
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`

/** A watch cell's write rate as the command line spells it. */
export const writeRateText = (rate: number): string => (rate === 0 ? "max" : `${rate}/s`)

/** What a cell's size column says: the value size, the counters of a cas-incr cell, or a watch cell's watchers and rate. */
export const cellSize = (c: Cell): string =>
  c.workload === "cas-incr"
    ? plural(c.counters ?? 1, "key")
    : c.workload === "watch"
      ? `${plural(c.watchers ?? 0, "watcher")} ${writeRateText(c.writeRate ?? 0)}`
      : c.valueBytes >= 1024
        ? `${c.valueBytes / 1024} KiB`
        : `${c.valueBytes} B`

export const describeCell = (c: Cell): string =>
  `${c.workload.padEnd(8)} c=${String(c.concurrency).padEnd(3)} ${cellSize(c)}`
