/**
 * One watch cell, the same for every target: `cell.watchers` prefix watches (started from just
 * after a mark written in each prefix, so none can miss a write however long the watchers take to
 * start), `cell.concurrency` writers putting to the watched prefixes in turn at `cell.writeRate`
 * writes/s in all (0: each as fast as answered) until the window closes, then a bounded wait for
 * every watcher to catch up, and the check.
 */
import type { Window } from "../lib/latency.ts"
import { type Cell, type Verdict, type WatchFigures, watchPrefixCount } from "../plan.ts"
import type { Driver } from "./driver.ts"
import { WatchAudit, writeValue } from "./watchAudit.ts"

/** Keys written per prefix (writes go round them), so a prefix watch sees several keys change. */
export const WATCH_KEYS_PER_PREFIX = 10

/** How long the watchers may take, after the writers stopped, to receive every acknowledged write. */
export const CATCH_UP_MS = 15_000

export interface WatchCellOptions {
  /** Instead of CATCH_UP_MS (tests that lose an event on purpose need not wait that long). */
  readonly catchUpMs?: number
}

/**
 * A cell's own prefixes. The hash tag keeps each prefix in one shard of the sharded service (so
 * one watch there is one poll); the padding keeps any prefix from being a prefix of another.
 */
export const watchPrefixes = (cellIndex: number, count: number): string[] =>
  Array.from({ length: count }, (_, p) => `{watch-${cellIndex}-${String(p).padStart(3, "0")}}/`)

export interface WatchCellOutcome {
  readonly verdict: Verdict
  readonly watch: WatchFigures
}

/** A watch cell whose watchers are started: `run` writes, waits for the watchers, stops them and checks. */
export interface WatchCell {
  readonly audit: WatchAudit
  /** Deliveries' latencies go into `window.recorder` (the cell's ops/s is then events/s). */
  run(window: Window): Promise<WatchCellOutcome>
}

/** Writes a mark in each of the cell's prefixes and starts every watcher from just after its prefix's mark. */
export const startWatchCell = async (
  driver: Driver,
  cell: Cell,
  cellIndex: number,
  options: WatchCellOptions = {},
): Promise<WatchCell> => {
  const watchers = cell.watchers ?? 1000
  const prefixes = watchPrefixes(cellIndex, watchPrefixCount(watchers))
  const audit = WatchAudit.spread(prefixes, watchers)
  const marks = await Promise.all(prefixes.map((prefix) => driver.markRevision(`${prefix}mark`)))
  const stops: (() => Promise<void>)[] = []
  const stopAll = () => Promise.all(stops.map((stop) => stop().catch(() => undefined)))
  try {
    for (let w = 0; w < watchers; w++) {
      const p = w % prefixes.length
      stops.push(
        await driver.watchPrefix(prefixes[p]!, marks[p]! + 1, {
          event: (key, value, modRevision) => audit.delivered(w, key, value, modRevision),
          ended: (why) => audit.ended(w, why),
        }),
      )
    }
  } catch (error) {
    await stopAll()
    throw error
  }
  const run = async (window: Window): Promise<WatchCellOutcome> => {
    try {
      await Promise.all(Array.from({ length: cell.concurrency }, (_, w) => writer(driver, cell, audit, window, w)))
      window.finish()
      const deadline = performance.now() + (options.catchUpMs ?? CATCH_UP_MS)
      while (!audit.caughtUp() && performance.now() < deadline) await Bun.sleep(20)
      // A write that failed may still have been applied: give its events the time to come.
      if (audit.unknown > 0) await Bun.sleep(1_000)
    } finally {
      await stopAll()
    }
    return outcome(audit, cell, window)
  }
  return { audit, run }
}

const outcome = (audit: WatchAudit, cell: Cell, window: Window): WatchCellOutcome => {
  const measured = audit.measure(window.recorder, window.measureFrom, window.until)
  return {
    verdict: audit.verdict(),
    watch: {
      watchers: audit.watchers,
      prefixes: audit.prefixes.length,
      writesPerSecond: Math.round(measured.answered / cell.seconds),
      writeErrors: measured.failed,
      fromSendP50Ms: measured.fromSendP50Ms,
      fromSendP99Ms: measured.fromSendP99Ms,
    },
  }
}

/** One writer: the next prefix in turn, one of its keys, a value naming the write; paced if the cell has a rate. */
const writer = async (driver: Driver, cell: Cell, audit: WatchAudit, window: Window, w: number): Promise<void> => {
  const intervalMs = (cell.writeRate ?? 0) > 0 ? (cell.concurrency * 1000) / cell.writeRate! : 0
  // Writers start spread over one interval, so a paced rate is steady rather than in bursts.
  let next = performance.now() + (intervalMs * w) / cell.concurrency
  while (window.open) {
    if (intervalMs > 0) {
      const wait = next - performance.now()
      if (wait > 0) await Bun.sleep(wait)
      // Behind by more than one interval (a slow answer): no burst to catch up.
      next = Math.max(next, performance.now() - intervalMs) + intervalMs
      if (!window.open) return
    }
    const p = audit.choosePrefix()
    const n = audit.sent(p, w)
    const key = `${audit.prefixes[p]}key-${Math.floor(n / audit.prefixes.length) % WATCH_KEYS_PER_PREFIX}`
    try {
      await driver.put(key, writeValue(n, cell.valueBytes))
      audit.answered(n, true)
    } catch {
      audit.answered(n, false)
    }
  }
}
