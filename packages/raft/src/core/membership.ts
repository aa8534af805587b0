/**
 * Membership changes, one server at a time (thesis §4.1–4.3).
 *
 * Why single-server changes rather than joint consensus: every operation the product needs (add a
 * learner, promote it, add a voter, remove a member, and `replace` as a sequence of those) changes
 * the voter set by at most one server, and any two majorities of configurations that differ by one
 * voter overlap, so one configuration entry suffices and no joint state has to be carried through
 * elections, commitment, snapshots and restarts. Learner changes do not touch the voter set at all.
 * The known hazard of the single-server scheme (a change proposed by a new leader before it has
 * committed an entry of its own term can lose a concurrent change of a deposed leader) is closed by
 * the rule the dissertation's errata adds: a leader proposes a change only after committing an entry
 * of its current term, and only when no configuration entry is uncommitted.
 */
import type { LogIndex, Member, MemberRole, Membership, NodeId } from "./types.ts"

export type MembershipChange =
  /** A non-voting member: it receives the log and snapshots and counts for nothing. */
  | { readonly type: "add-learner"; readonly id: NodeId; readonly address: string }
  /** Makes a learner a voter (usually once it has caught up). */
  | { readonly type: "promote"; readonly id: NodeId }
  /** A new voter at once (it counts toward quorums before it has any of the log: prefer a learner first). */
  | { readonly type: "add-voter"; readonly id: NodeId; readonly address: string }
  /** Removes a voter or a learner, the leader included (it hands leadership over once this commits). */
  | { readonly type: "remove"; readonly id: NodeId }

/** Why a change was not proposed; nothing entered the log. */
export type ChangeRefusal =
  | { readonly reason: "not-leader"; readonly leaderHint: NodeId | 0 }
  /** At most one change is in flight: retry once entry `index` has committed. */
  | { readonly reason: "change-in-progress"; readonly index: LogIndex }
  | { readonly reason: "unknown-member"; readonly id: NodeId }
  | { readonly reason: "already-member"; readonly id: NodeId; readonly role: MemberRole }
  /** Removing the only voter would leave a group that can never elect a leader again. */
  | { readonly reason: "last-voter"; readonly id: NodeId }

export const EMPTY_MEMBERSHIP: Membership = { members: [] }

/** The bootstrap membership: every peer a voter, addresses known to the shell only. */
export const votersMembership = (ids: readonly NodeId[], addressOf?: (id: NodeId) => string): Membership =>
  normalize(ids.map((id) => ({ id, role: "voter", address: addressOf?.(id) ?? "" })))

const normalize = (members: readonly Member[]): Membership => ({
  members: [...members].sort((a, b) => a.id - b.id),
})

export const roleOf = (m: Membership, id: NodeId): MemberRole | undefined => m.members.find((x) => x.id === id)?.role

export const votersOf = (m: Membership): NodeId[] => m.members.filter((x) => x.role === "voter").map((x) => x.id)

export const learnersOf = (m: Membership): NodeId[] => m.members.filter((x) => x.role === "learner").map((x) => x.id)

/** The membership `change` leads to, or why it cannot be made (membership rules only, not timing). */
export const applyChange = (m: Membership, change: MembershipChange): Membership | ChangeRefusal => {
  const role = roleOf(m, change.id)
  switch (change.type) {
    case "add-learner":
    case "add-voter":
      if (role !== undefined) return { reason: "already-member", id: change.id, role }
      return normalize([
        ...m.members,
        { id: change.id, role: change.type === "add-voter" ? "voter" : "learner", address: change.address },
      ])
    case "promote":
      if (role === undefined) return { reason: "unknown-member", id: change.id }
      if (role === "voter") return { reason: "already-member", id: change.id, role }
      return normalize(m.members.map((x) => (x.id === change.id ? { ...x, role: "voter" } : x)))
    case "remove":
      if (role === undefined) return { reason: "unknown-member", id: change.id }
      if (role === "voter" && votersOf(m).length === 1) return { reason: "last-voter", id: change.id }
      return normalize(m.members.filter((x) => x.id !== change.id))
  }
}

export const isRefusal = (x: Membership | ChangeRefusal): x is ChangeRefusal => "reason" in x

export const sameMembership = (a: Membership, b: Membership): boolean =>
  a.members.length === b.members.length &&
  a.members.every((x, k) => {
    const y = b.members[k]
    return y !== undefined && x.id === y.id && x.role === y.role && x.address === y.address
  })

/** A readable form for traces and logs: "1,2,3 +4(learner)". */
export const describeMembership = (m: Membership): string =>
  m.members.map((x) => (x.role === "voter" ? `${x.id}` : `${x.id}(learner)`)).join(",")
