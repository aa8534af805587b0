import { Context } from "effect"

/**
 * Time and timers for callback code on hot paths (one host timer per call, no fiber): the host's
 * by default, a virtual clock's in a simulation (provide another value for this reference).
 */
export interface Timers {
  /** Monotonic milliseconds, for deadlines and elapsed time. */
  now(): number
  /** Runs `fn` once after `delayMs`; the handle cancels it. */
  setTimer(delayMs: number, fn: () => void): TimerHandle
  clearTimer(handle: TimerHandle): void
  /** A uniform draw in [0, 1): retry jitter and fresh ids. */
  random(): number
}

/** Opaque to callers: whatever the implementation needs to cancel a timer. */
export type TimerHandle = unknown

/** The host's clock, timers and randomness: the one place outside a simulation that reads them. */
export const hostTimers: Timers = {
  now: () => performance.now(),
  setTimer: (delayMs, fn) => setTimeout(fn, delayMs),
  clearTimer: (handle) => clearTimeout(handle as unknown as ReturnType<typeof setTimeout>),
  random: () => Math.random(),
}

export const Timers = Context.Reference<Timers>("@kv/rpc/Timers", { defaultValue: () => hostTimers })
