import { monotonicMs } from "@kv/kvraft"
import { Clock, Duration, Effect } from "effect"

/**
 * Sleeps until the next multiple of `intervalMs` on the monotonic clock: every loop of every group
 * in a process that waits this way wakes in the same turn of the event loop, instead of each on a
 * timer of its own (a leader's four loops, times the groups the process serves). A boundary less
 * than a tenth of the interval away is skipped: timers fire up to a millisecond early, and a loop
 * woken just before its boundary would otherwise run again at once.
 */
export const untilNextInterval = (intervalMs: number): Effect.Effect<void> =>
  Effect.flatMap(Clock.Clock, (clock) => {
    const toBoundary = intervalMs - (monotonicMs(clock) % intervalMs)
    return Effect.sleep(Duration.millis(toBoundary < intervalMs / 10 ? toBoundary + intervalMs : toBoundary))
  })
