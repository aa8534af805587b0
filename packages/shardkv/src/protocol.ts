import {
  CommandOk,
  CommandRequest,
  fastCommandReply,
  fastCommandRequest,
  fastGetReply,
  fastGetRequest,
  GetRequest,
  KvErrorReply,
  ReadOk,
  ReadRequest,
  WrongLeaderReply,
} from "@kv/kvraft"
import { raftStatusFields } from "@kv/raft"
import { defineMethod, type RpcNodeShape } from "@kv/rpc"
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

export const ShardCommandReply = Schema.Union([...CommandOk.members, WrongLeaderReply, WrongGroupReply, KvErrorReply])
export type ShardCommandReply = typeof ShardCommandReply.Type

export const ShardGetReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true), value: Schema.String }),
  WrongLeaderReply,
  WrongGroupReply,
  KvErrorReply,
])
export type ShardGetReply = typeof ShardGetReply.Type

/** Entries with metadata and listing pages (`shard` names the shard whose keys are listed). */
export const ShardReadReply = Schema.Union([...ReadOk.members, WrongLeaderReply, WrongGroupReply, KvErrorReply])
export type ShardReadReply = typeof ShardReadReply.Type

/** Largest piece of a shard sent in one pull reply. */
export const PULL_CHUNK_BYTES = 256 * 1024

/**
 * Largest piece of a shard installed by one log entry: far below what one Raft message carries,
 * so a shard of any size moves as a series of entries.
 */
export const INSTALL_PIECE_BYTES = 2 * 1024 * 1024

/**
 * `configNum` names the shard as the source froze it (the handing-off configuration, or the one
 * that parked it); `toConfigNum` is the configuration that gave the shard to the asking group, whose
 * replicas alone are answered.
 */
export const PullRequest = Schema.Struct({ configNum: Count, toConfigNum: Count, shard: Count, offset: Count })
export type PullRequest = typeof PullRequest.Type

/**
 * `total` is the size of the whole shard (its KvStateMachine snapshot), `checksum` its CRC-32,
 * `chunk` the bytes at the requested offset. `NotReady`: this replica has not reached the
 * configuration yet (ask another). `Gone`: the shard is not handed off at that configuration here
 * (deleted, or never was). `Refused`: the asking address is not a replica of the group that the
 * configuration gives the shard to.
 */
export const PullReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true), total: Count, checksum: Count, chunk: Schema.Uint8Array }),
  Schema.Struct({ ok: Schema.Literal(false), error: Schema.Literals(["NotReady", "Gone", "Refused"]) }),
])
export type PullReply = typeof PullReply.Type

export const DeleteRequest = Schema.Struct({ configNum: Count, toConfigNum: Count, shard: Count })
export type DeleteRequest = typeof DeleteRequest.Type

/**
 * `ok`: the copy handed off at `configNum` is deleted (now or earlier). `NotReady`: not yet (the
 * new owner has not installed the shard, as far as this group can tell). `Refused`: the asking
 * address is not a replica of the new owner.
 */
export const DeleteReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true) }),
  WrongLeaderReply,
  Schema.Struct({ ok: Schema.Literal(false), error: Schema.Literals(["NotReady", "Refused"]) }),
])
export type DeleteReply = typeof DeleteReply.Type

/** Asked by a source before it deletes its copy: has this group installed `shard` given to it at `configNum`? */
export const InstalledRequest = Schema.Struct({ configNum: Count, shard: Count })
export type InstalledRequest = typeof InstalledRequest.Type
export const InstalledReply = Schema.Struct({ installed: Schema.Boolean })
export type InstalledReply = typeof InstalledReply.Type

export const ShardKvStatusReply = Schema.Struct({
  ...raftStatusFields,
  gid: Count,
  leaderAddress: Schema.String,
  configNum: Count,
  /** Per shard: Serving | Pulling | HandingOff | AwaitingGc | Parked | Absent. */
  shards: Schema.Array(Schema.String),
  /** Keys held per shard. */
  keys: Schema.Array(Count),
  /** Why this group refuses to take part (its gid is retired), or "". */
  retired: Schema.String,
  /**
   * The replica still restores the snapshot it started from: configNum, shards and keys are not
   * its own yet (absent from servers before it).
   */
  restoring: Schema.optionalKey(Schema.Boolean),
})
export type ShardKvStatusReply = typeof ShardKvStatusReply.Type

// The requests are kvraft's, and so are the common replies (success, WrongLeader), which come
// before WrongGroup in these unions: kvraft's hand-written checks decode them as these Schemas do.
export const ShardKvCommandMethod = defineMethod("shardkv.command", CommandRequest, ShardCommandReply, {
  request: fastCommandRequest,
  response: fastCommandReply,
})
export const ShardKvGetMethod = defineMethod("shardkv.get", GetRequest, ShardGetReply, {
  request: fastGetRequest,
  response: fastGetReply,
})
export const ShardKvReadMethod = defineMethod("shardkv.read", ReadRequest, ShardReadReply)
export const ShardPullMethod = defineMethod("shard.pull", PullRequest, PullReply)
export const ShardDeleteMethod = defineMethod("shard.delete", DeleteRequest, DeleteReply)
export const ShardInstalledMethod = defineMethod("shard.installed", InstalledRequest, InstalledReply)
export const ShardKvStatusMethod = defineMethod("shardkv.status", Schema.Struct({}), ShardKvStatusReply)

/**
 * A shard group's name on the wire (`shardkv.command@101`, `raft@101`): a host may serve several
 * groups' replicas on one address, one socket (RpcNodeShape.scoped).
 */
export const groupScope = (gid: number): string => String(gid)

/** `rpc` speaking to shard group `gid`, as its clients, its peers and the other groups do. */
export const groupRpc = (rpc: RpcNodeShape, gid: number): RpcNodeShape => rpc.scoped(groupScope(gid))
