import type { Clock } from "effect"

/**
 * The clock a leader stamps client commands with (`nowMs`), from which replicas derive the log
 * time that expires client sessions: the Effect `Clock` service the server runs with (live, or
 * virtual in a simulation). Monotonic within a process: an NTP step or a manual clock change
 * never makes it jump. Its origin is the wall clock when the clock was first read, so stamps of
 * different processes may be far apart; sessions.ts bounds what a jump between leaders can do.
 */
export const commandStampMs = (clock: Clock.Clock): number => {
  let origin = origins.get(clock)
  if (origin === undefined) {
    origin = clock.currentTimeMillisUnsafe() - monotonicMs(clock)
    origins.set(clock, origin)
  }
  // A clock set before 1970 must not make a stamp that no replica can decode.
  return Math.max(0, Math.floor(origin + monotonicMs(clock)))
}

const origins = new WeakMap<Clock.Clock, number>()

/** Milliseconds on the clock's monotonic time line: for deadlines and elapsed time, never for stamps. */
export const monotonicMs = (clock: Clock.Clock): number => Number(clock.monotonicTimeNanosUnsafe()) / 1_000_000

/** A client id: 53 random bits from the Random service, so a simulation's seed decides it. */
export const randomClientId = (random: { nextDoubleUnsafe(): number }): number =>
  1 + Math.floor(random.nextDoubleUnsafe() * (Number.MAX_SAFE_INTEGER - 1))
