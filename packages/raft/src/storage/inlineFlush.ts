/**
 * Where a durable write's flush runs: on the caller's thread, or on the runtime's thread pool.
 *
 * The pool keeps the event loop turning while the disk works, which many clients need: what arrives
 * during a flush joins the next batch. It costs two thread hand-offs per write (the pool thread is
 * woken, then the loop is woken by its completion), and on a busy machine each hand-off waits for a
 * core. With one write in flight there is nothing to gain from the loop turning meanwhile, and the
 * hand-offs are most of what a write costs beyond the disk: measured on tmpfs, one client's puts went
 * from p50 0.46 to 0.32 ms and p99 2.5 to 1.85 ms with the flush inline (BENCHMARKS.md).
 *
 * So a batch of at most `maxEntries` entries (one client's, not many clients') is flushed inline
 * while recent flushes took at most `maxMs`; a larger batch goes to the pool, and so does every batch
 * while the disk is slow, where an inline flush would hold the loop through a stall.
 */

export interface InlineFlushOptions {
  /** Batches of at most this many entries may flush inline. Default 1. */
  readonly maxEntries: number
  /** Flush inline only while recent flushes (a moving average) took at most this. Default 1 ms. */
  readonly maxMs: number
}

export const DEFAULT_INLINE_FLUSH: InlineFlushOptions = { maxEntries: 1, maxMs: 1 }

/**
 * Weight of the newest flush in the moving average: after a 20 ms stall amid 0.3 ms flushes, about
 * seven flushes go to the pool before single entries flush inline again.
 */
const NEWEST_WEIGHT = 0.25

export class FlushPlacement {
  /** Moving average of recent flush times, inline or pooled (a pooled one includes its hand-offs). */
  #recentMs = 0

  constructor(private readonly options: InlineFlushOptions | false) {
    if (options === false) return
    if (!Number.isSafeInteger(options.maxEntries) || options.maxEntries < 0) {
      throw new RangeError(`inlineFlush.maxEntries must be a non-negative integer, got ${options.maxEntries}`)
    }
    if (!(options.maxMs >= 0)) throw new RangeError(`inlineFlush.maxMs must be non-negative, got ${options.maxMs}`)
  }

  /** Should a batch of `entries` entries flush on the caller's thread? */
  inline(entries: number): boolean {
    return this.options !== false && entries <= this.options.maxEntries && this.#recentMs <= this.options.maxMs
  }

  /** A flush took `ms`. */
  flushed(ms: number): void {
    this.#recentMs += NEWEST_WEIGHT * (ms - this.#recentMs)
  }

  get recentMs(): number {
    return this.#recentMs
  }
}
