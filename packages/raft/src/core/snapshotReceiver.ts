/** Follower side of chunked InstallSnapshot: reassembles the chunks of one snapshot in order. */
import type { LogIndex, NodeId, Snap, Snapshot, Term } from "./types.ts"

interface Incoming {
  readonly from: NodeId
  readonly term: Term
  readonly index: LogIndex
  readonly snapshotTerm: Term
  readonly data: Uint8Array
  received: number
}

export class SnapshotReceiver {
  /** The transfer in progress; any change of sender, term or snapshot starts a new one. */
  private incoming: Incoming | undefined = undefined

  constructor(private readonly maxBytes: number) {}

  /** Forgets a transfer the commit index has passed: the log no longer needs it. */
  dropCoveredBy(commit: LogIndex): void {
    if (this.incoming !== undefined && this.incoming.index <= commit) this.incoming = undefined
  }

  /**
   * Takes one chunk. Returns the whole snapshot once its last byte is in, otherwise the next byte
   * offset wanted (0: start over), or undefined when the chunk is to be ignored without an answer.
   */
  receive(m: Snap): Snapshot | number | undefined {
    const meta = m.snapshot
    let inc = this.incoming
    const same =
      inc !== undefined &&
      inc.from === m.from &&
      inc.term === m.term &&
      inc.index === meta.index &&
      inc.snapshotTerm === meta.term &&
      inc.data.length === m.total
    if (inc === undefined || !same) {
      // A late chunk of an older snapshot from the same leader must not discard the newer transfer.
      if (inc !== undefined && inc.from === m.from && inc.term === m.term && meta.index < inc.index) return undefined
      // Without the beginning (we restarted, or it was lost) only offset 0 can start a transfer.
      if (m.offset !== 0) return 0
      if (!Number.isSafeInteger(m.total) || m.total < 0 || m.total > this.maxBytes) return undefined
      inc = {
        from: m.from,
        term: m.term,
        index: meta.index,
        snapshotTerm: meta.term,
        data: new Uint8Array(m.total),
        received: 0,
      }
      this.incoming = inc
    }
    // Only the chunk at the next expected offset counts; early, repeated and overlong ones do not.
    if (m.offset === inc.received && inc.received + m.chunk.length <= inc.data.length) {
      inc.data.set(m.chunk, inc.received)
      inc.received += m.chunk.length
    }
    if (inc.received < inc.data.length) return inc.received
    this.incoming = undefined
    return { index: inc.index, term: inc.snapshotTerm, data: inc.data }
  }
}
