import { defineMethod } from "@kv/rpc"
import { Schema } from "effect"

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
/** -1 where the value is not known (a member's match and lag, outside the leader). */
const CountOrUnknown = Schema.Int.check(Schema.isGreaterThanOrEqualTo(-1))

/** A replica's Raft status on the wire; services' status replies extend these fields. */
export const raftStatusFields = {
  id: Count,
  term: Count,
  role: Schema.Literals(["follower", "pre-candidate", "candidate", "leader"]),
  leader: Count,
  commitIndex: Count,
  appliedIndex: Count,
  lastIndex: Count,
  snapshotIndex: Count,
  raftStateBytes: Count,
  snapshotBytes: Count,
  /** Leader: its snapshot's size when a lagging follower needs it and it is past maxSnapshotBytes; else 0. */
  oversizedSnapshotBytes: Count,
  /** This replica in its own membership. */
  member: Schema.Literals(["voter", "learner", "removed", "joining"]),
  membershipIndex: Count,
  /** The latest configuration in the replica's log; match and lag only from the leader. */
  members: Schema.Array(
    Schema.Struct({
      id: Count,
      address: Schema.String,
      role: Schema.Literals(["leader", "voter", "learner"]),
      match: CountOrUnknown,
      lag: CountOrUnknown,
    }),
  ),
}

/** Every Raft replica answers this, for `kv status` and health checks. */
export const RaftStatusMethod = defineMethod("raft.status", Schema.Struct({}), Schema.Struct(raftStatusFields))
