/**
 * What the RSM framework replicates: a deterministic state machine over opaque command bytes.
 * kvraft, the shard controller and the shard groups each provide one.
 */
export interface ReplicatedStateMachine<R> {
  /** Applies a committed command, in log order, identically on every replica. */
  apply(command: Uint8Array, index: number): R
  /** The whole state (sessions included), for compaction and for lagging followers. */
  snapshot(): Uint8Array
  /**
   * Optional: the bytes of `snapshot()` written after `roomBytes` free bytes at the start, which
   * the RSM fills with its envelope. A large state is then not copied again to be wrapped (each
   * copy of a 100 MiB snapshot is a pause of the replica's event loop).
   */
  snapshotWithRoom?(roomBytes: number): Uint8Array
  /**
   * Optional: `snapshotWithRoom` taken a slice at a time, so that a large state's snapshot does not
   * hold the replica's event loop: the state as it is at this call, while `apply` goes on being
   * called between slices. The RSM calls `step` (each a few milliseconds of work) between turns of
   * the event loop until it returns the bytes; it drops a job across a `restore`.
   */
  beginSnapshot?(roomBytes: number): SnapshotInProgress
  /** Replaces the state with a snapshot's. */
  restore(snapshot: Uint8Array): void
  /**
   * Optional: `restore` a slice at a time, for the snapshot a replica starts from: the RSM calls
   * `step` (each a few milliseconds of work) between turns of the event loop, so the replica's
   * Raft node answers its peers while a large store is restored; the state is replaced when
   * `step` returns true. Nothing else is called meanwhile.
   */
  beginRestore?(snapshot: Uint8Array): RestoreInProgress
}

/** A restore done a slice at a time (see `beginRestore`). */
export interface RestoreInProgress {
  /** Does one slice of the work; true once the state is replaced. */
  step(): boolean
}

/** The restore that steps `job` and hands the machine it gives to `install`. */
export const installWhenRestored = <A>(
  job: { step(): A | undefined },
  install: (restored: A) => void,
): RestoreInProgress => ({
  step: () => {
    const restored = job.step()
    if (restored === undefined) return false
    install(restored)
    return true
  },
})

/** A snapshot being taken a slice at a time (see `beginSnapshot`). */
export interface SnapshotInProgress {
  /** Does one slice of the work; the snapshot's bytes once it is done. */
  step(): Uint8Array | undefined
}
