import { defineMethod } from "@kv/rpc"
import { Schema } from "effect"

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Positive = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

export const ConfigSchema = Schema.Struct({
  num: Count,
  shards: Schema.Array(Count),
  groups: Schema.Record(Schema.String, Schema.Array(Schema.String)),
})

const WrongLeaderReply = Schema.Struct({
  ok: Schema.Literal(false),
  error: Schema.Literal("WrongLeader"),
  leaderHint: Schema.String,
})
const ErrorReply = Schema.Struct({ ok: Schema.Literal(false), error: Schema.String, message: Schema.String })

export const AdminOpSchema = Schema.Union([
  Schema.Struct({ op: Schema.Literal("join"), groups: Schema.Record(Schema.String, Schema.Array(Schema.String)) }),
  Schema.Struct({ op: Schema.Literal("leave"), gids: Schema.Array(Schema.Int) }),
  Schema.Struct({ op: Schema.Literal("move"), shard: Schema.Int, gid: Schema.Int }),
  Schema.Struct({ op: Schema.Literal("servers"), gid: Schema.Int, servers: Schema.Array(Schema.String) }),
  Schema.Struct({
    op: Schema.Literal("register"),
    gid: Schema.Int,
    incarnation: Schema.String,
    configNum: Schema.Int,
  }),
  Schema.Struct({ op: Schema.Literal("succeed"), gid: Schema.Int, incarnation: Schema.String }),
])

export const AdminRequest = Schema.Struct({
  clientId: Positive,
  seq: Positive,
  ackedBelow: Positive,
  op: AdminOpSchema,
})
export const AdminReply = Schema.Union([Schema.Struct({ ok: Schema.Literal(true) }), WrongLeaderReply, ErrorReply])

export const QueryRequest = Schema.Struct({ num: Schema.Int })
export const QueryReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true), config: ConfigSchema }),
  WrongLeaderReply,
  ErrorReply,
])

/** A gid's current incarnation ("" when none) and where it carries on from (see `succeed`). */
export const IncarnationRequest = Schema.Struct({ gid: Schema.Int })
export const IncarnationReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true), incarnation: Schema.String, startAfter: Count }),
  WrongLeaderReply,
  ErrorReply,
])

/** A group's servers: the latest configuration's, or for a group that left, its latest list. */
export const GroupServersRequest = Schema.Struct({ gid: Schema.Int })
export const GroupServersReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true), servers: Schema.Array(Schema.String) }),
  WrongLeaderReply,
  ErrorReply,
])

export const ControllerAdminMethod = defineMethod("ctrl.admin", AdminRequest, AdminReply)
export const ControllerIncarnationMethod = defineMethod("ctrl.incarnation", IncarnationRequest, IncarnationReply)
export const ControllerQueryMethod = defineMethod("ctrl.query", QueryRequest, QueryReply)
export const ControllerGroupServersMethod = defineMethod("ctrl.groupServers", GroupServersRequest, GroupServersReply)
