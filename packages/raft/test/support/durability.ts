import type { HardState, LogIndex, Message } from "../../src/core/index.ts"

/** What a node's disk holds, as far as the promises its messages make are concerned. */
export interface DurableState {
  readonly hardState: HardState
  readonly snapshot: { readonly index: LogIndex } | undefined
  readonly entries: readonly { readonly index: LogIndex }[]
}

/**
 * Persist before you send (thesis §3.8): whatever a message promises about its sender is on the
 * sender's disk when it leaves. Campaigns and a leader's traffic: the term, with the sender's own
 * vote; vote grants: the vote (a later durable term also does: no second vote can follow in the
 * term it left within the same batch); acknowledgements: the entries they vouch for; anything
 * else: the term it carries (only a pre-vote, or a grant of one, speaks of a future term).
 * Returns what the message promises that `disk` does not hold, or undefined.
 */
export const promiseNotDurable = (m: Message, disk: DurableState): string | undefined => {
  const hs = disk.hardState
  switch (m.type) {
    case "PreVote":
      return undefined
    case "PreVoteResp":
      return m.reject && m.term > hs.term ? "carries a term not yet durable" : undefined
    case "VoteResp":
      if (m.term > hs.term) return "carries a term not yet durable"
      if (!m.reject && hs.term === m.term && hs.vote !== m.to) return "grants a vote not yet durable"
      return undefined
    case "Vote":
    case "Append":
    case "Heartbeat":
    case "Snap":
    case "TimeoutNow":
      // A later term on disk is fine: this one was left behind in the same batch.
      if (hs.term < m.term || (hs.term === m.term && hs.vote !== m.from)) {
        return "speaks for a term or vote not yet durable"
      }
      return undefined
    case "AppendResp": {
      if (m.term > hs.term) return "carries a term not yet durable"
      const durableLast = Math.max(disk.snapshot?.index ?? 0, disk.entries.at(-1)?.index ?? 0)
      if (!m.reject && m.index > durableLast) return `acknowledges entries past the durable log (${durableLast})`
      return undefined
    }
    default:
      return m.term > hs.term ? "carries a term not yet durable" : undefined
  }
}
