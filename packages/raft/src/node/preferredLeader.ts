/**
 * A group may name the member that should lead it whenever that member is up and holds the log
 * (`RaftNodeConfig.preferredLeader`). Co-hosted groups that name the same host this way take their
 * Readies in the same rounds on both ends (readyRounds.ts), so their batches travel together.
 */
import type { NodeId, Status } from "../core/index.ts"

/** After a hand-over that did not take (the preferred member lost the election), wait this many election timeouts. */
export const PREFERRED_RETRY_ELECTIONS = 10

/**
 * How long the preferred member must hold the log before it is handed leadership, in election
 * timeouts (3 s at the defaults). A replica back from a restart holds the log long before it has
 * applied it (a long tail replays for a second or more): led by it at once, the group would answer
 * nothing until it had. The leader cannot see a follower's applied index; this bounds the case.
 */
export const PREFERRED_SETTLE_ELECTIONS = 10

export type PreferredState = "not-ready" | "ready" | "unheard"

/**
 * Where `preferred` stands for a hand-over, on the leader: "ready" is a voter it replicates to,
 * heard from within the last election timeout, holding every committed entry (so the transfer
 * refuses proposals for one round trip at most), with no transfer under way. "unheard" is all of
 * that but not heard from since the last quorum check, which forgets every follower once per
 * election timeout: one such look proves nothing, two in a row do.
 */
export const preferredLeaderState = (status: Status, preferred: NodeId): PreferredState => {
  if (status.role !== "leader" || status.id === preferred || status.leadTransferee !== 0) return "not-ready"
  const pr = status.progress?.find((p) => p.id === preferred)
  if (pr === undefined || pr.role !== "voter" || pr.state !== "replicate" || pr.match < status.commit) {
    return "not-ready"
  }
  return pr.recentActive ? "ready" : "unheard"
}
