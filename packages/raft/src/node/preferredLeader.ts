/**
 * A group may name the member that should lead it whenever that member is up and holds the log
 * (`RaftNodeConfig.preferredLeader`). Co-hosted groups that name the same host this way take their
 * Readies in the same rounds on both ends (readyRounds.ts), so their batches travel together.
 */
import type { NodeId, Status } from "../core/index.ts"

/** After a hand-over that did not take (the preferred member lost the election), wait this many election timeouts. */
export const PREFERRED_RETRY_ELECTIONS = 10

/**
 * Whether a leader should hand leadership to `preferred` now: a voter it replicates to, heard from
 * within the last election timeout, holding every committed entry (so the transfer refuses
 * proposals for one round trip at most), with no transfer already under way.
 */
export const preferredLeaderReady = (status: Status, preferred: NodeId): boolean => {
  if (status.role !== "leader" || status.id === preferred || status.leadTransferee !== 0) return false
  const pr = status.progress?.find((p) => p.id === preferred)
  return (
    pr !== undefined && pr.role === "voter" && pr.state === "replicate" && pr.recentActive && pr.match >= status.commit
  )
}
