import type { LatencyFigures, LatencyHistogram, PooledLatency } from "../plan.ts"

/** Latencies of one measured window; sorted once at the end (a few hundred thousand samples at most). */
export class LatencyRecorder {
  private samples = new Float64Array(1 << 16)
  private count = 0
  errors = 0
  /** cas-incr: conditional writes answered inside the window, and those that found the key changed. */
  conditionalWrites = 0
  conflicts = 0
  /** cas-incr: increments still retrying when the cell ended, and how long the oldest had been at it. */
  unfinished = 0
  oldestUnfinishedMs = 0

  record(ms: number): void {
    if (this.count === this.samples.length) {
      const grown = new Float64Array(this.samples.length * 2)
      grown.set(this.samples)
      this.samples = grown
    }
    this.samples[this.count++] = ms
  }

  figures(seconds: number): LatencyFigures {
    const sorted = this.samples.subarray(0, this.count).sort()
    const at = (p: number) =>
      sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0)
    return {
      ops: this.count,
      errors: this.errors,
      conditionalWrites: this.conditionalWrites,
      conflicts: this.conflicts,
      unfinished: this.unfinished,
      oldestUnfinishedMs: this.oldestUnfinishedMs,
      opsPerSecond: Math.round(this.count / seconds),
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      p999Ms: at(0.999),
      maxMs: sorted.length === 0 ? 0 : (sorted[sorted.length - 1] ?? 0),
      histogram: histogramOf(sorted),
    }
  }
}

/**
 * Bins 1% wide on a log scale from 1 µs: one 5 s round's p99 moves by a fifth with this machine's
 * disk, so `--rounds N` also reports percentiles over every round's operations, read from the
 * rounds' bins (at most 1% above the exact figure: a percentile is its bin's upper bound).
 */
const BIN_FLOOR_MS = 0.001
const LOG_BIN_GROWTH = Math.log(1.01)

const binOf = (ms: number): number =>
  ms <= BIN_FLOOR_MS ? 0 : Math.floor(Math.log(ms / BIN_FLOOR_MS) / LOG_BIN_GROWTH)

const binUpperMs = (bin: number): number => BIN_FLOOR_MS * Math.exp((bin + 1) * LOG_BIN_GROWTH)

/** Latencies sorted ascending, binned. */
export const histogramOf = (sorted: ArrayLike<number>): LatencyHistogram => {
  const bins: [number, number][] = []
  for (let i = 0; i < sorted.length; i++) {
    const bin = binOf(sorted[i]!)
    const last = bins[bins.length - 1]
    if (last !== undefined && last[0] === bin) last[1]++
    else bins.push([bin, 1])
  }
  return bins
}

/** Percentiles of several windows together, by the same rank rule as a single window's figures. */
export const pooledLatency = (histograms: readonly LatencyHistogram[]): PooledLatency => {
  const counts = new Map<number, number>()
  for (const histogram of histograms) for (const [bin, n] of histogram) counts.set(bin, (counts.get(bin) ?? 0) + n)
  const bins = [...counts].sort((a, b) => a[0] - b[0])
  const ops = bins.reduce((sum, [, n]) => sum + n, 0)
  const at = (p: number) => {
    const rank = Math.min(ops - 1, Math.floor(ops * p))
    let seen = 0
    for (const [bin, n] of bins) {
      seen += n
      if (seen > rank) return binUpperMs(bin)
    }
    return 0
  }
  return { rounds: histograms.length, ops, p50Ms: at(0.5), p99Ms: at(0.99), p999Ms: at(0.999) }
}

/** Called once each when the measured part of a window begins and ends (for CPU sampling). */
export interface WindowHooks {
  readonly opened?: () => void
  readonly closed?: () => void
}

/**
 * The measured window of a cell: operations that start after the warm-up and finish before the
 * end count; throughput is those over the window's length.
 */
export class Window {
  readonly startedAt = performance.now()
  readonly measureFrom: number
  readonly until: number
  readonly recorder = new LatencyRecorder()
  private phase: "warmup" | "measuring" | "over" = "warmup"

  constructor(
    warmupSeconds: number,
    seconds: number,
    private readonly hooks: WindowHooks = {},
  ) {
    this.measureFrom = this.startedAt + warmupSeconds * 1000
    this.until = this.measureFrom + seconds * 1000
  }

  /**
   * Runs the hooks whose moment has come. The workers call it on every operation (through
   * `open`) as well as the load process's timers: 64 kv fibers listing 100 keys each kept the
   * load process's event loop from running any timer for a whole cell.
   */
  poll(now = performance.now()): void {
    if (this.phase === "warmup" && now >= this.measureFrom) {
      this.phase = "measuring"
      this.hooks.opened?.()
    }
    if (this.phase === "measuring" && now >= this.until) {
      this.phase = "over"
      this.hooks.closed?.()
    }
  }

  /** Closes the window now if it is not yet (after the last worker stopped). */
  finish(): void {
    this.poll(Math.max(performance.now(), this.until))
  }

  get open(): boolean {
    const now = performance.now()
    this.poll(now)
    return now < this.until
  }

  done(start: number, ok: boolean): void {
    const end = performance.now()
    if (start < this.measureFrom || end > this.until) return
    if (ok) this.recorder.record(end - start)
    else this.recorder.errors++
  }

  /**
   * A cas-incr increment ended (`start`: its first read). It counts when it ends inside the window,
   * whenever in the cell it began: under contention one increment can retry for longer than the
   * window, and counting only those that began inside it would leave exactly those out.
   */
  incrementDone(start: number, ok: boolean): void {
    const end = performance.now()
    if (end < this.measureFrom || end > this.until) return
    if (ok) this.recorder.record(end - start)
    else this.recorder.errors++
  }

  /** A conditional write was answered: `applied` false is a conflict. */
  conditionalWrite(applied: boolean): void {
    const now = performance.now()
    if (now < this.measureFrom || now > this.until) return
    this.recorder.conditionalWrites++
    if (!applied) this.recorder.conflicts++
  }

  /** An increment was given up because the cell ended (`start`: its first read). */
  incrementUnfinished(start: number): void {
    this.recorder.unfinished++
    this.recorder.oldestUnfinishedMs = Math.max(this.recorder.oldestUnfinishedMs, performance.now() - start)
  }
}
