import type { LatencyFigures } from "../plan.ts"

/** Latencies of one measured window; sorted once at the end (a few hundred thousand samples at most). */
export class LatencyRecorder {
  private samples = new Float64Array(1 << 16)
  private count = 0
  errors = 0

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
      opsPerSecond: Math.round(this.count / seconds),
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      p999Ms: at(0.999),
      maxMs: sorted.length === 0 ? 0 : (sorted[sorted.length - 1] ?? 0),
    }
  }
}

/**
 * The measured window of a cell: operations that start after the warm-up and finish before the
 * end count; throughput is those over the window's length.
 */
export class Window {
  readonly measureFrom: number
  readonly until: number
  readonly recorder = new LatencyRecorder()

  constructor(warmupSeconds: number, seconds: number) {
    this.measureFrom = performance.now() + warmupSeconds * 1000
    this.until = this.measureFrom + seconds * 1000
  }

  get open(): boolean {
    return performance.now() < this.until
  }

  done(start: number, ok: boolean): void {
    const end = performance.now()
    if (start < this.measureFrom || end > this.until) return
    if (ok) this.recorder.record(end - start)
    else this.recorder.errors++
  }
}
