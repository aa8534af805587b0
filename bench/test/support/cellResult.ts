import type { CellResult } from "../../plan.ts"

/** A measured cell of 100 B values over 5 s, latencies 1 / 2 / 3 ms unless `extra` says otherwise. */
export const cellResult = (
  workload: "put" | "get",
  concurrency: number,
  opsPerSecond: number,
  extra: Partial<CellResult> = {},
): CellResult => ({
  cell: { workload, concurrency, valueBytes: 100, warmupSeconds: 1, seconds: 5 },
  ops: opsPerSecond * 5,
  errors: 0,
  conditionalWrites: 0,
  conflicts: 0,
  unfinished: 0,
  oldestUnfinishedMs: 0,
  opsPerSecond,
  p50Ms: 1,
  p99Ms: 2,
  p999Ms: 3,
  maxMs: 4,
  cpu: {},
  ...extra,
})
