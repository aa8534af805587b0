/**
 * Where one shard stands at one replica group, relative to the group's current configuration.
 *
 *   Serving     owned now and held: client operations are applied.
 *   Pulling     owned now, but the data is still at the previous owner: nothing is served.
 *   HandingOff  owned by the previous configuration only: the data is kept, frozen, until the
 *               new owner has installed it and asks for it to be deleted. Nothing is served.
 *   AwaitingGc  owned now and installed (served), but the previous owner has not yet confirmed
 *               deleting its copy.
 *   Parked      owned by this group until a configuration gave the shard to no group (every group
 *               left): the data and sessions are kept, frozen, until the next group given the shard
 *               has installed them and asks for them to be deleted (or this group gets it back).
 *               Nothing is served, and it does not hold up later configurations. Reported only:
 *               the group keeps a parked copy beside the shard's own state, which is Absent (or
 *               Pulling, when the group is given the shard again from another group meanwhile).
 *   Absent      not owned and not held.
 */
export type ShardState = "Serving" | "Pulling" | "HandingOff" | "AwaitingGc" | "Parked" | "Absent"

/** Compact codes for snapshots; the position is the code, so never reorder. */
export const shardStateCodes: readonly ShardState[] = Object.freeze([
  "Absent",
  "Serving",
  "Pulling",
  "HandingOff",
  "AwaitingGc",
  "Parked",
])

export const shardStateCode = (state: ShardState): number => shardStateCodes.indexOf(state)

/** States in which the group answers client operations on the shard. */
export const servesClients = (state: ShardState): boolean => state === "Serving" || state === "AwaitingGc"

/** States in which the group holds the shard's data. */
export const holdsData = (state: ShardState): boolean =>
  state === "Serving" || state === "HandingOff" || state === "AwaitingGc"
