/**
 * The clock a leader stamps client commands with (`nowMs`), from which replicas derive the log
 * time that expires client sessions. Monotonic within a process: an NTP step or a manual clock
 * change never makes it jump. Its origin is the wall clock at process start, so stamps of
 * different processes may be far apart; sessions.ts bounds what a jump between leaders can do.
 */
export const commandStampMs = (): number => Math.floor(performance.timeOrigin + performance.now())
