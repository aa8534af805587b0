import { monotonicMs } from "@kv/kvraft"
import { Clock, Duration, Effect } from "effect"

/**
 * Sleeps until the next multiple of `intervalMs` on the monotonic clock: every loop of every group
 * in a process that waits this way wakes in the same turn of the event loop, instead of each on a
 * timer of its own (a leader's four loops, times the groups the process serves).
 */
export const untilNextInterval = (intervalMs: number): Effect.Effect<void> =>
  Effect.flatMap(Clock.Clock, (clock) => Effect.sleep(Duration.millis(intervalMs - (monotonicMs(clock) % intervalMs))))
