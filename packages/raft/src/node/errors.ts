import { Schema } from "effect"

/** This node is not the leader (or stopped being it before the operation completed). */
export class NotLeader extends Schema.TaggedError<NotLeader>()("NotLeader", {
  /** The node's best guess of the current leader, 0 when unknown. */
  leaderHint: Schema.Number,
}) {}

/** The node has been shut down. */
export class NodeStopped extends Schema.TaggedError<NodeStopped>()("NodeStopped", {}) {}

/**
 * The command is larger than one Raft message can carry (`maxBytes`, see RaftNodeShape.maxEntryBytes),
 * so it is refused before it enters the log: an entry no follower can receive would stop the group.
 * Not retryable as it is.
 */
export class ProposalTooLarge extends Schema.TaggedError<ProposalTooLarge>()("ProposalTooLarge", {
  bytes: Schema.Number,
  maxBytes: Schema.Number,
}) {}
