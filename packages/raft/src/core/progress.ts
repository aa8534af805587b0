/** What a leader knows about one follower's log, and how it is sending to it. */
import type { LogIndex, MemberRole, NodeId, PeerProgress, ProgressState, Snapshot } from "./types.ts"

/**
 * Bounded window of Appends sent in replicate state and not yet acknowledged, each recorded by the
 * last index it carried. A ring buffer: acknowledgements free a prefix.
 */
export class Inflights {
  private readonly buf: Float64Array
  private start = 0
  count = 0

  constructor(readonly capacity: number) {
    this.buf = new Float64Array(capacity)
  }

  full(): boolean {
    return this.count >= this.capacity
  }

  add(lastIndex: LogIndex): void {
    if (this.full()) throw new Error("inflights: window is full")
    this.buf[(this.start + this.count) % this.capacity] = lastIndex
    this.count++
  }

  /** Frees every Append whose last index is <= index (the follower holds them all). */
  freeLE(index: LogIndex): void {
    while (this.count > 0 && (this.buf[this.start] ?? 0) <= index) {
      this.start = (this.start + 1) % this.capacity
      this.count--
    }
  }

  reset(): void {
    this.start = 0
    this.count = 0
  }
}

/**
 * Invariants: match < next; in probe state at most one Append is unanswered (probeSent); in
 * replicate state next runs ahead of match by the Appends in `inflights`; in snapshot state no
 * Appends are sent until the follower reports it holds the snapshot.
 */
export class Progress {
  /** Highest index known to be replicated on the follower. */
  match: LogIndex = 0
  /** Index of the next entry to send. */
  next: LogIndex = 1
  state: ProgressState = "probe"
  /** Probe state: an Append is out; wait for its answer or a heartbeat response before the next one. */
  probeSent = false
  /** The follower answered something within the current election timeout (check-quorum, §6.2). */
  recentActive = false
  readonly inflights: Inflights
  /**
   * Progress value (match, or the acked snapshot offset) seen at the previous heartbeat response;
   * if a whole heartbeat interval passes without it moving, what was in flight is taken as lost.
   */
  stallMark = -1
  /** The leader's tick count before which `match` is not lowered again (see handleAppendResp). */
  matchResetAllowedAt = 0

  /** Snapshot state: the snapshot being sent (kept even if the leader compacts again meanwhile). */
  snapshot: Snapshot | undefined = undefined
  /** Next byte the follower said it expects. */
  snapshotAcked = 0
  /** Bytes sent so far (go-back-N: rewinds to snapshotAcked when a chunk looks lost). */
  snapshotSent = 0
  /** The final chunk has been sent since the last rewind. */
  snapshotLastSent = false
  /** Already went back once on a repeated offset; wait for progress (or a stall) before again. */
  snapshotFastRewound = false

  constructor(
    readonly id: NodeId,
    maxInflight: number,
  ) {
    this.inflights = new Inflights(maxInflight)
  }

  /** Fresh state for a new leader: optimistic next, unknown match (§5.3). */
  resetForLeader(lastIndex: LogIndex): void {
    this.match = 0
    this.next = lastIndex + 1
    this.recentActive = false
    this.enter("probe")
  }

  becomeProbe(): void {
    this.enter("probe")
    this.next = this.match + 1
  }

  becomeReplicate(): void {
    this.enter("replicate")
    this.next = this.match + 1
  }

  becomeSnapshot(snapshot: Snapshot): void {
    this.enter("snapshot")
    this.snapshot = snapshot
  }

  /** Go-back-N: send again from byte `to` on. */
  rewindSnapshot(to: number): void {
    this.snapshotSent = to
    this.snapshotLastSent = false
  }

  private enter(state: ProgressState): void {
    this.state = state
    this.probeSent = false
    this.inflights.reset()
    this.stallMark = -1
    this.snapshot = undefined
    this.snapshotAcked = 0
    this.snapshotSent = 0
    this.snapshotLastSent = false
    this.snapshotFastRewound = false
  }

  /** Records that the follower holds everything up to `index`; false if that is old news. */
  maybeUpdate(index: LogIndex): boolean {
    if (index <= this.match) return false
    this.match = index
    this.probeSent = false
    if (this.next <= index) this.next = index + 1
    return true
  }

  /** No more Appends may go out now. */
  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent
      case "replicate":
        return this.inflights.full()
      case "snapshot":
        return true
    }
  }

  describe(role: MemberRole | "removed"): PeerProgress {
    return {
      id: this.id,
      role,
      match: this.match,
      next: this.next,
      state: this.state,
      recentActive: this.recentActive,
      inflight: this.inflights.count,
    }
  }
}
