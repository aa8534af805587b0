/**
 * Where a durable write's flush runs: on the caller's thread, or on the runtime's thread pool.
 *
 * The pool keeps the event loop turning while the disk works, which many clients need: what arrives
 * during a flush joins the next batch. It costs two thread hand-offs per write (the pool thread is
 * woken, then the loop is woken by its completion), and on a busy machine each hand-off waits for a
 * core. A follower's answer to a small Append waits for its write anyway, as does a leader's whose
 * write is its only work (one client's put), and the hand-offs are most of what such a write costs
 * beyond the disk (BENCHMARKS.md, 2026-12-07 22:15). A leader with reads or other batches in flight
 * has answers to act on during its flush: holding it cost reads when puts and gets mix.
 *
 * So when the writer says it waits (`WriteHint.callerWaits`), a batch of at most `maxEntries` entries
 * (one client's, not many clients') is flushed inline while recent flushes took at most `maxMs`; a
 * larger batch goes to the pool, and so does every batch while the disk is slow, where an inline
 * flush would hold the loop through a stall.
 */

export interface InlineFlushOptions {
  /** Batches of at most this many entries may flush inline. Default 1. */
  readonly maxEntries: number
  /** Flush inline only while recent flushes (a moving average) took at most this. Default 1 ms. */
  readonly maxMs: number
}

export const DEFAULT_INLINE_FLUSH: InlineFlushOptions = { maxEntries: 1, maxMs: 1 }

/** Weight of the newest flush in the moving average: a stall counts for about four flushes. */
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
