import { defineMethod } from "@kv/rpc"
import { Schema } from "effect"
import { WrongLeaderReply } from "../protocol.ts"

/**
 * Member admin protocol, answered by every replica of every group built on the RSM (kvraft, the
 * shard controller, each shard group). Datagrams are authenticated by the cluster key like all other
 * traffic. A change is made by the leader only: any other replica answers `WrongLeader` before doing
 * anything (safe to retry elsewhere); `NotLeader` means the change was proposed and leadership was
 * lost before it committed, so it may or may not have taken effect (read the membership again).
 */
const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Positive = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const CountOrUnknown = Schema.Int.check(Schema.isGreaterThanOrEqualTo(-1))

export const MemberInfo = Schema.Struct({
  id: Positive,
  /** "" when the answering replica does not know it. */
  address: Schema.String,
  role: Schema.Literals(["leader", "voter", "learner"]),
  /** From the leader: the highest index known replicated on the member; -1 from other replicas. */
  match: CountOrUnknown,
  /** From the leader: entries the member is behind the leader's log; -1 from other replicas. */
  lag: CountOrUnknown,
})
export type MemberInfo = typeof MemberInfo.Type

export const MemberListRequest = Schema.Struct({
  /** Only the leader answers (others say WrongLeader), for match and lag; false: any replica. */
  leaderOnly: Schema.Boolean,
})

export const MemberList = Schema.Struct({
  ok: Schema.Literal(true),
  /** The answering replica's id and its own place in the group. */
  id: Positive,
  self: Schema.Literals(["voter", "learner", "removed", "joining"]),
  leader: Count,
  term: Count,
  commitIndex: Count,
  /** Index of the configuration entry in force (0: the snapshot's or the bootstrap one). */
  membershipIndex: Count,
  /** The latest configuration in the answering replica's log, committed or not. */
  members: Schema.Array(MemberInfo),
  /** Every id a committed configuration has named: never to be added again. */
  named: Schema.Array(Positive),
  /** Every id a leader has seen acknowledge log entries. */
  heldData: Schema.Array(Positive),
})
export type MemberList = typeof MemberList.Type

export const MemberListReply = Schema.Union([MemberList, WrongLeaderReply])
export type MemberListReply = typeof MemberListReply.Type

export const MemberChangeKind = Schema.Literals(["add-learner", "add-voter", "promote", "remove"])
export type MemberChangeKind = typeof MemberChangeKind.Type

export const MemberChangeRequest = Schema.Struct({
  change: MemberChangeKind,
  id: Positive,
  /** The new member's `host:port` (add-learner, add-voter); "" otherwise. */
  address: Schema.String,
})
export type MemberChangeRequest = typeof MemberChangeRequest.Type

export const MemberChangeReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true), index: Count, members: Schema.Array(MemberInfo) }),
  WrongLeaderReply,
  Schema.Struct({
    ok: Schema.Literal(false),
    error: Schema.Literal("NotLeader"),
    leaderHint: Schema.String,
    leaderId: Count,
  }),
  Schema.Struct({ ok: Schema.Literal(false), error: Schema.Literal("ChangeInProgress"), index: Count }),
  Schema.Struct({
    ok: Schema.Literal(false),
    error: Schema.Literals(["UnknownMember", "LastVoter", "IdUsedBefore"]),
    id: Positive,
  }),
  Schema.Struct({
    ok: Schema.Literal(false),
    error: Schema.Literal("AlreadyMember"),
    id: Positive,
    role: Schema.Literals(["voter", "learner"]),
  }),
  Schema.Struct({ ok: Schema.Literal(false), error: Schema.Literal("BadAddress"), message: Schema.String }),
])
export type MemberChangeReply = typeof MemberChangeReply.Type

export const MemberListMethod = defineMethod("member.list", MemberListRequest, MemberListReply)
export const MemberChangeMethod = defineMethod("member.change", MemberChangeRequest, MemberChangeReply)
