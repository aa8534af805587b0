import type { Role } from "./keyRing.ts"

/** Why an incoming datagram (or a message being sent) was dropped. */
export type DropReason =
  | "malformed"
  | "unauthenticated"
  | "oversized"
  | "expiredFragments"
  | "queueFull"
  | "unreachable"
  /** A peer message claiming a sender id whose configured address it did not come from. */
  | "wrongSender"
  /** A peer message whose terms or indexes are beyond what any honest peer sends (Raft's bounds). */
  | "outOfBounds"
  /**
   * Authentic, but under a key whose role may not send it: a one-way (Raft) message or a reply
   * under a client key (see keyRing.ts).
   */
  | "forbidden"

export const dropReasons: readonly DropReason[] = [
  "malformed",
  "unauthenticated",
  "oversized",
  "expiredFragments",
  "queueFull",
  "unreachable",
  "wrongSender",
  "outOfBounds",
  "forbidden",
]

/**
 * Counters of one transport. Plain mutable fields: they are bumped on the per-datagram hot path,
 * where a metric registry lookup would cost more than the work being counted.
 */
export class TransportStats {
  datagramsSent = 0
  bytesSent = 0
  datagramsReceived = 0
  bytesReceived = 0
  messagesSent = 0
  messagesReceived = 0
  /**
   * Replies too large for an address that has not proven itself, replaced by a "prove your
   * address" challenge (or, for a request too small to carry even that, not sent at all).
   */
  repliesChallenged = 0
  /** Challenges received as a caller (each answered by resending the request with its token). */
  challengesReceived = 0
  /** Requests sent again by calls of this node (no reply within the retransmission timeout, or a challenge). */
  requestsResent = 0
  /** Addresses proven by a valid token. */
  addressesProven = 0
  /** Outgoing datagrams dropped by fault injection (netFaults.ts); also counted as sent. */
  injectedLosses = 0
  /** Outgoing datagrams sent twice by fault injection (the copy is not counted as sent). */
  injectedDuplicates = 0
  readonly drops: Record<DropReason, number> = {
    malformed: 0,
    unauthenticated: 0,
    oversized: 0,
    expiredFragments: 0,
    queueFull: 0,
    unreachable: 0,
    wrongSender: 0,
    outOfBounds: 0,
    forbidden: 0,
  }
  /** Requests answered with PermissionDenied, by the role of the caller's key. */
  readonly refused: Record<Role, number> = { "read-only": 0, "read-write": 0, admin: 0, server: 0 }

  refuse(role: Role): void {
    this.refused[role]++
  }

  drop(reason: DropReason, count = 1): void {
    this.drops[reason] += count
  }

  totalDrops(): number {
    let n = 0
    for (const reason of dropReasons) n += this.drops[reason]
    return n
  }

  snapshot(): TransportStatsSnapshot {
    return {
      datagramsSent: this.datagramsSent,
      bytesSent: this.bytesSent,
      datagramsReceived: this.datagramsReceived,
      bytesReceived: this.bytesReceived,
      messagesSent: this.messagesSent,
      messagesReceived: this.messagesReceived,
      repliesChallenged: this.repliesChallenged,
      challengesReceived: this.challengesReceived,
      requestsResent: this.requestsResent,
      addressesProven: this.addressesProven,
      injectedLosses: this.injectedLosses,
      injectedDuplicates: this.injectedDuplicates,
      drops: { ...this.drops },
      refused: { ...this.refused },
    }
  }
}

export interface TransportStatsSnapshot {
  readonly datagramsSent: number
  readonly bytesSent: number
  readonly datagramsReceived: number
  readonly bytesReceived: number
  readonly messagesSent: number
  readonly messagesReceived: number
  readonly repliesChallenged: number
  readonly challengesReceived: number
  readonly requestsResent: number
  readonly addressesProven: number
  readonly injectedLosses: number
  readonly injectedDuplicates: number
  readonly drops: Readonly<Record<DropReason, number>>
  readonly refused: Readonly<Record<Role, number>>
}
