/**
 * What the RSM framework replicates: a deterministic state machine over opaque command bytes.
 * kvraft, the shard controller and the shard groups each provide one.
 */
export interface ReplicatedStateMachine<R> {
  /** Applies a committed command, in log order, identically on every replica. */
  apply(command: Uint8Array, index: number): R
  /** The whole state (sessions included), for compaction and for lagging followers. */
  snapshot(): Uint8Array
  /** Replaces the state with a snapshot's. */
  restore(snapshot: Uint8Array): void
}
