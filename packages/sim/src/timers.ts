/**
 * The clock and randomness of callback code (the rpc layer's `Timers`: retries, deadlines, fresh
 * ids) on a virtual clock and a seeded stream. Structural, so this package needs no rpc import.
 */
import type { VirtualClock } from "./clock.ts"
import type { Rng } from "./rng.ts"

export interface VirtualTimers {
  now(): number
  setTimer(delayMs: number, fn: () => void): unknown
  clearTimer(handle: unknown): void
  random(): number
}

export const virtualTimers = (clock: VirtualClock, rng: Rng): VirtualTimers => ({
  now: () => clock.now(),
  setTimer: (delayMs, fn) => clock.setTimer(delayMs, fn),
  clearTimer: (handle) => {
    clock.cancelTimer(handle as number)
  },
  random: () => rng.nextDouble(),
})
