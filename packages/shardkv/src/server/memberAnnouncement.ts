/**
 * A shard group's members reach the controller: once a membership change (a member added,
 * promoted or removed) has committed in the group's Raft log, its leader sends the new server
 * list to the controller, whose next configuration carries it to the clients and the other
 * groups. Checked on every round of the leader's loop, so a list lost with a leader, or overwritten
 * by a deposed leader's late request, is sent again until the configurations say it.
 */
import type { RaftStatus } from "@kv/raft"
import type { ControllerClientShape, Gid } from "@kv/shardctrler"
import { Effect } from "effect"
import type { ShardStateMachine } from "../stateMachine/index.ts"
import type { Incarnation } from "./incarnation.ts"
import type { LatestServers } from "./latestServers.ts"
import { sameEndpoint } from "./members.ts"

/**
 * The group's servers as its leader's committed membership has them: voters (the leader among
 * them) then learners, each by id. Undefined on a replica that does not lead, while a change is
 * uncommitted, or when some member's address is unknown here.
 */
export const memberServers = (status: RaftStatus): readonly string[] | undefined => {
  if (status.role !== "leader" || status.membershipIndex > status.commitIndex) return undefined
  const voters = status.members.filter((m) => m.role !== "learner")
  const learners = status.members.filter((m) => m.role === "learner")
  const members = [...voters, ...learners]
  if (members.length === 0 || members.some((m) => m.address === "")) return undefined
  return members.map((m) => m.address)
}

/** The same endpoints, in any order (a promotion changes no address, so it needs no configuration). */
export const sameServers = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length &&
  a.every((x) => b.some((y) => sameEndpoint(x, y))) &&
  b.every((y) => a.some((x) => sameEndpoint(x, y)))

export interface MemberAnnouncementDeps {
  readonly gid: Gid
  readonly status: () => RaftStatus
  readonly machine: () => ShardStateMachine
  readonly controller: ControllerClientShape
  readonly incarnation: Incarnation
  readonly latest: LatestServers
}

/**
 * One round: if this replica leads and its members differ from the list of the configuration the
 * group has reached, and from the controller's latest list, the controller gets the new list. Only
 * a member of that configuration, and only the incarnation the controller knows for the gid, speaks
 * for it. A group its configuration no longer names speaks only while it still holds shards to
 * hand on: the controller keeps that list beside the configurations. True if a list was sent.
 */
export const announceMembers = (deps: MemberAnnouncementDeps): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    const servers = memberServers(deps.status())
    if (servers === undefined) return false
    const machine = deps.machine()
    const reached = machine.config.groups[String(deps.gid)]
    if (reached !== undefined && sameServers(servers, reached)) return false
    if (reached === undefined && machine.shardStates().every((state) => state === "Absent")) return false
    if (!(yield* deps.incarnation.ensure(0))) return false
    const listed = yield* deps.latest.current(deps.gid)
    if (listed.length === 0 || sameServers(servers, listed)) return false
    // The query took a while: send only what this replica still leads with.
    const now = memberServers(deps.status())
    if (now === undefined || !sameServers(now, servers)) return false
    yield* deps.controller.setServers(deps.gid, servers)
    return true
  }).pipe(Effect.catchCause(() => Effect.succeed(false)))
