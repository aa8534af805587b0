import { raftStatusFields } from "@kv/raft"
import { defineMethod } from "@kv/rpc"
import { Schema } from "effect"

/**
 * The kvraft client protocol. Every reply is a value, success or a typed error: `WrongLeader`
 * (try another server; `leaderHint` is its address when known) is the only one a client retries.
 */
const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Positive = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

export const KvOpSchema = Schema.Union([
  Schema.Struct({ op: Schema.Literal("put"), key: Schema.String, value: Schema.String }),
  Schema.Struct({ op: Schema.Literal("append"), key: Schema.String, value: Schema.String }),
  Schema.Struct({ op: Schema.Literal("delete"), key: Schema.String }),
])

export const WrongLeaderReply = Schema.Struct({
  ok: Schema.Literal(false),
  error: Schema.Literal("WrongLeader"),
  leaderHint: Schema.String,
})

export const KvErrorReply = Schema.Struct({
  ok: Schema.Literal(false),
  error: Schema.Literals([
    "ValueTooLarge",
    "KeyTooLarge",
    "SessionExpired",
    "OutcomeUnknown",
    "TooManyOutstanding",
    "Stale",
  ]),
  message: Schema.String,
})

export const CommandRequest = Schema.Struct({
  clientId: Positive,
  seq: Positive,
  ackedBelow: Positive,
  op: KvOpSchema,
})
export type CommandRequest = typeof CommandRequest.Type

export const CommandReply = Schema.Union([Schema.Struct({ ok: Schema.Literal(true) }), WrongLeaderReply, KvErrorReply])
export type CommandReply = typeof CommandReply.Type

export const GetRequest = Schema.Struct({ key: Schema.String })
export const GetReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true), value: Schema.String }),
  WrongLeaderReply,
  KvErrorReply,
])
export type GetReply = typeof GetReply.Type

export const StatusReply = Schema.Struct({ ...raftStatusFields, leaderAddress: Schema.String, keys: Count })
export type StatusReply = typeof StatusReply.Type

export const KvCommandMethod = defineMethod("kv.command", CommandRequest, CommandReply)
export const KvGetMethod = defineMethod("kv.get", GetRequest, GetReply)
export const KvStatusMethod = defineMethod("kv.status", Schema.Struct({}), StatusReply)
