/**
 * What a benchmark run measures: the workloads, the cells of the matrix (workload × concurrency ×
 * value size), and the messages between the orchestrator (run.ts) and the load process (load.ts).
 */

export const workloads = ["put", "get", "append", "mixed"] as const
export type Workload = (typeof workloads)[number]

export interface Cell {
  readonly workload: Workload
  readonly concurrency: number
  readonly valueBytes: number
  readonly warmupSeconds: number
  readonly seconds: number
}

export interface LatencyFigures {
  readonly ops: number
  readonly errors: number
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
  | { readonly type: "cell"; readonly index: number; readonly figures: LatencyFigures; readonly loadCpu: number }
  | { readonly type: "done" }
  | { readonly type: "failed"; readonly message: string }

/** Appends per key before a worker moves to a fresh key, so appended values stay bounded. */
export const APPENDS_PER_KEY = 10

export interface Matrix {
  /** Unmeasured load on a freshly started target before its first cell. */
  readonly targetWarmupSeconds: number
  readonly workloads: readonly Workload[]
  readonly concurrency: readonly number[]
  readonly valueBytes: readonly number[]
  readonly warmupSeconds: number
  readonly seconds: number
}

export const fullMatrix: Matrix = {
  targetWarmupSeconds: 3,
  workloads,
  concurrency: [1, 16, 64, 256],
  valueBytes: [100, 4096],
  warmupSeconds: 1,
  seconds: 3,
}

/** The headline cells only: about 30 s in all for kvraft, etcd and both sharded clusters. */
export const quickMatrix: Matrix = {
  targetWarmupSeconds: 0.5,
  workloads,
  concurrency: [1, 64],
  valueBytes: [100],
  warmupSeconds: 0.2,
  seconds: 0.7,
}

/** In a quick run the sharded clusters (up to 12 processes to start) get put and get at 64 only. */
export const quickShardedMatrix: Matrix = { ...quickMatrix, workloads: ["put", "get"], concurrency: [64] }

/** Cells in the order they run: by value size, so each size is preloaded once. */
export const cellsOf = (m: Matrix): Cell[] => {
  const cells: Cell[] = []
  for (const valueBytes of m.valueBytes)
    for (const workload of m.workloads)
      for (const concurrency of m.concurrency)
        cells.push({ workload, concurrency, valueBytes, warmupSeconds: m.warmupSeconds, seconds: m.seconds })
  return cells
}

export const describeCell = (c: Cell): string =>
  `${c.workload.padEnd(6)} c=${String(c.concurrency).padEnd(3)} ${c.valueBytes >= 1024 ? `${c.valueBytes / 1024} KiB` : `${c.valueBytes} B`}`
