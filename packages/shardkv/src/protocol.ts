import { CommandRequest, GetRequest, KvErrorReply, WrongLeaderReply } from "@kv/kvraft"
import { raftStatusFields } from "@kv/raft"
import { defineMethod } from "@kv/rpc"
import { Schema } from "effect"

/**
 * The shard-group protocol. Client replies are values: success, `WrongLeader` (try another replica
 * of the group), `WrongGroup` (the group does not serve the key's shard now: refresh the
 * configuration) or a KV error. Group-to-group methods move shards between groups.
 */
const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

export const WrongGroupReply = Schema.Struct({
  ok: Schema.Literal(false),
  error: Schema.Literal("WrongGroup"),
  message: Schema.String,
})

export const ShardCommandReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true) }),
  WrongLeaderReply,
  WrongGroupReply,
  KvErrorReply,
])
export type ShardCommandReply = typeof ShardCommandReply.Type

export const ShardGetReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true), value: Schema.String }),
  WrongLeaderReply,
  WrongGroupReply,
  KvErrorReply,
])
export type ShardGetReply = typeof ShardGetReply.Type

/** Largest piece of a shard sent in one pull reply. */
export const PULL_CHUNK_BYTES = 256 * 1024

export const PullRequest = Schema.Struct({ configNum: Count, shard: Count, offset: Count })
export type PullRequest = typeof PullRequest.Type

/**
 * `total` is the size of the whole shard (its KvStateMachine snapshot), `chunk` the bytes at the
 * requested offset. `NotReady`: this replica has not reached the configuration yet (ask another).
 * `Gone`: the shard is not handed off at that configuration here (deleted, or never was).
 */
export const PullReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true), total: Count, chunk: Schema.Uint8Array }),
  Schema.Struct({ ok: Schema.Literal(false), error: Schema.Literals(["NotReady", "Gone"]) }),
])
export type PullReply = typeof PullReply.Type

export const DeleteRequest = Schema.Struct({ configNum: Count, shard: Count })
export type DeleteRequest = typeof DeleteRequest.Type

/** `ok`: the copy handed off at `configNum` is deleted (now or earlier). */
export const DeleteReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true) }),
  WrongLeaderReply,
  Schema.Struct({ ok: Schema.Literal(false), error: Schema.Literal("NotReady") }),
])
export type DeleteReply = typeof DeleteReply.Type

export const ShardKvStatusReply = Schema.Struct({
  ...raftStatusFields,
  gid: Count,
  leaderAddress: Schema.String,
  configNum: Count,
  /** Per shard: Serving | Pulling | HandingOff | AwaitingGc | Absent. */
  shards: Schema.Array(Schema.String),
  /** Keys held per shard. */
  keys: Schema.Array(Count),
})
export type ShardKvStatusReply = typeof ShardKvStatusReply.Type

export const ShardKvCommandMethod = defineMethod("shardkv.command", CommandRequest, ShardCommandReply)
export const ShardKvGetMethod = defineMethod("shardkv.get", GetRequest, ShardGetReply)
export const ShardPullMethod = defineMethod("shard.pull", PullRequest, PullReply)
export const ShardDeleteMethod = defineMethod("shard.delete", DeleteRequest, DeleteReply)
export const ShardKvStatusMethod = defineMethod("shardkv.status", Schema.Struct({}), ShardKvStatusReply)
