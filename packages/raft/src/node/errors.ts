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

/**
 * A membership change is already in flight (at most one at a time), or this leader has not yet
 * committed an entry of its term: retry once entry `index` has committed.
 */
export class ChangeInProgress extends Schema.TaggedError<ChangeInProgress>()("ChangeInProgress", {
  index: Schema.Number,
}) {}

/** The change names a node that is not a member (promote, remove). */
export class UnknownMember extends Schema.TaggedError<UnknownMember>()("UnknownMember", {
  id: Schema.Number,
}) {}

/** The change would add a member that already is one, or promote a voter. */
export class AlreadyMember extends Schema.TaggedError<AlreadyMember>()("AlreadyMember", {
  id: Schema.Number,
  role: Schema.Literals(["voter", "learner"]),
}) {}

/** Removing the only voter would leave a group that can never elect a leader again. */
export class LastVoter extends Schema.TaggedError<LastVoter>()("LastVoter", {
  id: Schema.Number,
}) {}

/** Every way a membership change can be refused or interrupted. */
export type MembershipChangeError =
  | NotLeader
  | NodeStopped
  | ChangeInProgress
  | UnknownMember
  | AlreadyMember
  | LastVoter
