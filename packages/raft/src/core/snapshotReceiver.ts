/** Follower side of chunked InstallSnapshot: reassembles the chunks of one snapshot in order. */
import type { LogIndex, Membership, NodeId, Snap, Snapshot, Term } from "./types.ts"

interface Incoming {
  readonly from: NodeId
  readonly term: Term
  readonly index: LogIndex
  readonly snapshotTerm: Term
  readonly membership: Membership | undefined
  /** The size the leader announced; trusted only as far as bytes actually arrive. */
  readonly total: number
  /** The bytes received so far, at the front; grown as chunks arrive, never past `total`. */
  data: Uint8Array
  received: number
}

/** The first buffer of a transfer; later ones double, so copying costs at most the data once more. */
const INITIAL_BUFFER_BYTES = 64 * 1024

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
      inc.total === m.total
    if (inc === undefined || !same) {
      // A late chunk of an older snapshot from the same leader must not discard the newer transfer.
      if (inc !== undefined && inc.from === m.from && inc.term === m.term && meta.index < inc.index) return undefined
      // Without the beginning (we restarted, or it was lost) only offset 0 can start a transfer.
      if (m.offset !== 0) return 0
      if (!Number.isSafeInteger(m.total) || m.total < 0 || m.total > this.maxBytes) return undefined
      // A claimed size costs nothing until the bytes come: a forged first chunk announcing a
      // gigabyte must not make us allocate one.
      inc = {
        from: m.from,
        term: m.term,
        index: meta.index,
        snapshotTerm: meta.term,
        membership: meta.membership,
        total: m.total,
        data: new Uint8Array(Math.min(m.total, Math.max(INITIAL_BUFFER_BYTES, m.chunk.length))),
        received: 0,
      }
      this.incoming = inc
    }
    // Only the chunk at the next expected offset counts; early, repeated and overlong ones do not.
    if (m.offset === inc.received && inc.received + m.chunk.length <= inc.total) {
      const needed = inc.received + m.chunk.length
      if (needed > inc.data.length) {
        const grown = new Uint8Array(Math.min(inc.total, Math.max(needed, inc.data.length * 2)))
        grown.set(inc.data.subarray(0, inc.received))
        inc.data = grown
      }
      inc.data.set(m.chunk, inc.received)
      inc.received = needed
    }
    if (inc.received < inc.total) return inc.received
    this.incoming = undefined
    const snapshot: Snapshot = { index: inc.index, term: inc.snapshotTerm, data: inc.data }
    return inc.membership === undefined ? snapshot : { ...snapshot, membership: inc.membership }
  }

  /** Bytes held for the transfer in progress (its buffer), 0 without one. */
  bufferedBytes(): number {
    return this.incoming?.data.length ?? 0
  }
}
