/** What a leader knows about one follower's log, and how it is sending to it. */
import type { LogIndex, MemberRole, NodeId, PeerProgress, ProgressState, Snapshot } from "./types.ts"

/** Floor of the resend timeout: a reply one tick late (measured at tick granularity) is not a loss. */
const MIN_RESEND_TICKS = 2

/**
 * Bounded window of Appends sent in replicate state and not yet acknowledged, each recorded by the
 * last index it carried and the leader tick it left at. A ring buffer: acknowledgements free a prefix.
 */
export class Inflights {
  private readonly buf: Float64Array
  private readonly sentAt: Float64Array
  private start = 0
  count = 0

  constructor(readonly capacity: number) {
    this.buf = new Float64Array(capacity)
    this.sentAt = new Float64Array(capacity)
  }

  full(): boolean {
    return this.count >= this.capacity
  }

  add(lastIndex: LogIndex, tick = 0): void {
    if (this.full()) throw new Error("inflights: window is full")
    const at = (this.start + this.count) % this.capacity
    this.buf[at] = lastIndex
    this.sentAt[at] = tick
    this.count++
  }

  /**
   * Frees every Append whose last index is <= index (the follower holds them all). Returns the tick
   * the last freed one left at (its acknowledgement is a round-trip sample), or -1 if none was freed.
   */
  freeLE(index: LogIndex): number {
    let sentAt = -1
    while (this.count > 0 && (this.buf[this.start] ?? 0) <= index) {
      sentAt = this.sentAt[this.start] ?? -1
      this.start = (this.start + 1) % this.capacity
      this.count--
    }
    return sentAt
  }

  /** Tick the oldest unacknowledged Append left at; -1 when none is out. */
  oldestSentAt(): number {
    return this.count === 0 ? -1 : (this.sentAt[this.start] ?? -1)
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
  /**
   * Leader tick the outstanding probe left at; -1 when none is out or the one out is to wait for a
   * heartbeat answer rather than be resent on a timeout.
   */
  probeSentAt = -1
  /** Smoothed round trip of Appends to this follower, in ticks (-1 before the first sample). */
  srttTicks = -1
  rttvarTicks = 0
  /** Appends resent on a timeout since the follower last made progress: each doubles the timeout. */
  resends = 0
  /** The follower answered something within the current election timeout (check-quorum, §6.2). */
  recentActive = false
  readonly inflights: Inflights
  /**
   * Progress value (match, or the acked snapshot offset) seen at a heartbeat response, and the
   * leader's tick then; if a whole heartbeat interval passes without it moving (while the follower
   * is behind), what was in flight is taken as lost.
   */
  stallMark = -1
  stallMarkedAt = 0
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

  /**
   * Round trip of an Append first sent `ticks` ago and acknowledged now (RFC 6298's smoothing, as
   * TCP: SRTT gains 1/8 of the difference, RTTVAR 1/4 of the deviation).
   */
  sampleRtt(ticks: number): void {
    if (this.srttTicks < 0) {
      this.srttTicks = ticks
      this.rttvarTicks = ticks / 2
      return
    }
    this.rttvarTicks = 0.75 * this.rttvarTicks + 0.25 * Math.abs(this.srttTicks - ticks)
    this.srttTicks = 0.875 * this.srttTicks + 0.125 * ticks
  }

  /**
   * Ticks an unacknowledged Append (or probe) is given before it is taken as lost and sent again:
   * SRTT + 4·RTTVAR, at least one tick above SRTT (a tick is the clock's granularity) and at least
   * MIN_RESEND_TICKS, doubled per resend without progress. Infinite until the first sample: nothing
   * is known to time against.
   */
  resendTimeoutTicks(): number {
    if (this.srttTicks < 0) return Number.POSITIVE_INFINITY
    const base = Math.max(MIN_RESEND_TICKS, Math.ceil(this.srttTicks + Math.max(1, 4 * this.rttvarTicks)))
    return base * 2 ** Math.min(this.resends, 16)
  }

  private enter(state: ProgressState): void {
    this.state = state
    this.probeSent = false
    this.probeSentAt = -1
    this.inflights.reset()
    this.stallMark = -1
    this.stallMarkedAt = 0
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
    this.resends = 0
    this.probeSent = false
    this.probeSentAt = -1
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
