import { defineMethod } from "@kv/rpc"
import { Schema } from "effect"

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

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
}

/** Every Raft replica answers this, for `kv status` and health checks. */
export const RaftStatusMethod = defineMethod("raft.status", Schema.Struct({}), Schema.Struct(raftStatusFields))
