import { Schema } from "effect"

/**
 * This server cannot complete the operation as leader: it is not the leader, lost leadership
 * before the operation committed, or could not confirm leadership in time. The client retries
 * elsewhere; `leaderHint` is the Raft id of the likely leader, 0 when unknown.
 */
export class WrongLeader extends Schema.TaggedError<WrongLeader>()("WrongLeader", {
  leaderHint: Schema.Number,
}) {}
