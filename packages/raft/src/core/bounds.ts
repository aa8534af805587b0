/**
 * What a Raft message may claim before the core believes it. A peer's message is a datagram: it
 * can be forged, replayed or corrupted, and a term or index taken from it is persisted and then
 * incremented. A term of 2^53 − 1, for instance, would be written to disk and end every election
 * (term + 1 is no longer an exact number), on every restart too. So, before a message is stepped:
 *
 * - every term, index, offset and counter it carries is at most MAX_TERM_OR_INDEX (2^48): a group
 *   electing a leader every millisecond would take 8,900 years to reach it, and term + 1 or
 *   index + 1 stays an exact integer;
 * - its term is at most MAX_TERM_AHEAD (10^6) above the receiver's: with pre-vote and check-quorum
 *   a term rises only when a majority agrees to an election, so a real peer is never that far
 *   ahead; a replica that is (down through a million elections) must be re-seeded from an empty
 *   data directory;
 * - every other term it names (the candidate's last log term, prevTerm, an entry's or snapshot's
 *   term, a conflict term) is at most its own term, as Raft guarantees for any honest sender;
 * - an Append carries no entry larger than the receiver's maxEntryBytes (what one message holds).
 *
 * A message that breaks any of these is dropped whole, before it can change term, vote or log.
 */
import type { Message, Term } from "./types.ts"

export const MAX_TERM_OR_INDEX = 2 ** 48
export const MAX_TERM_AHEAD = 1_000_000

/**
 * Bytes one Raft message adds around the data of the single entry it carries: the rpc envelope,
 * field names and numbers (measured at ~200 bytes with every number at MAX_TERM_OR_INDEX).
 */
export const RAFT_MESSAGE_OVERHEAD_BYTES = 1024

/** The largest entry one Raft message of at most `maxMessageBytes` can carry. */
export const maxEntryBytesFor = (maxMessageBytes: number): number => maxMessageBytes - RAFT_MESSAGE_OVERHEAD_BYTES

/** The rpc layer's default message limit (8 MiB), for cores configured without maxEntryBytes. */
export const DEFAULT_MAX_ENTRY_BYTES = maxEntryBytesFor(8 * 1024 * 1024)

const ok = (n: number): boolean => n <= MAX_TERM_OR_INDEX
const termOk = (t: Term, term: Term): boolean => t <= term

/** Whether `m` stays within the bounds above for a receiver at `currentTerm`. */
export const messageWithinBounds = (m: Message, currentTerm: Term, maxEntryBytes: number): boolean => {
  const term = m.term
  if (!ok(term) || term > currentTerm + MAX_TERM_AHEAD) return false
  switch (m.type) {
    case "PreVote":
    case "Vote":
      return ok(m.lastLogIndex) && termOk(m.lastLogTerm, term)
    case "Append": {
      if (!ok(m.prevIndex) || !termOk(m.prevTerm, term) || !ok(m.commit)) return false
      if (m.prevIndex + m.entries.length > MAX_TERM_OR_INDEX) return false
      for (const e of m.entries) if (e.data.length > maxEntryBytes) return false
      return true
    }
    case "AppendResp":
      return ok(m.index) && termOk(m.conflictTerm, term) && ok(m.conflictIndex)
    case "Heartbeat":
      return ok(m.commit) && ok(m.context)
    case "HeartbeatResp":
      return ok(m.context)
    case "Snap":
      return ok(m.snapshot.index) && termOk(m.snapshot.term, term) && ok(m.offset) && ok(m.total)
    case "SnapResp":
      return ok(m.snapshot.index) && termOk(m.snapshot.term, term) && ok(m.offset)
    case "PreVoteResp":
    case "VoteResp":
    case "TimeoutNow":
      return true
  }
}
