import { raftStatusFields } from "@kv/raft"
import { defineMethod } from "@kv/rpc"
import { Schema } from "effect"
import { fastCommandReply, fastCommandRequest, fastGetReply, fastGetRequest } from "./fastDecoders.ts"

/**
 * The kvraft client protocol. Every reply is a value, success or a typed error: `WrongLeader`
 * (try another server; `leaderHint` is its address when known) is the only one a client retries.
 */
const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Positive = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

const CompareTarget = Schema.Literals(["version", "modRevision", "createRevision", "value"])
const CompareOp = Schema.Literals(["==", "!=", "<", ">"])

/** A test of one key: numbers for version and revisions, a string for the value. */
export const ConditionSchema = Schema.Struct({
  target: CompareTarget,
  cmp: CompareOp,
  value: Schema.Union([Schema.Int, Schema.String]),
})
export const CompareSchema = Schema.Struct({ key: Schema.String, ...ConditionSchema.fields })

/** Attaches the written key to a lease (see `leaseGrant`). */
const LeaseField = { lease: Schema.optionalKey(Positive) }

export const TxnOpSchema = Schema.Union([
  Schema.Struct({ op: Schema.Literal("put"), key: Schema.String, value: Schema.String, ...LeaseField }),
  Schema.Struct({ op: Schema.Literal("delete"), key: Schema.String }),
  Schema.Struct({ op: Schema.Literal("get"), key: Schema.String }),
])

export const KvOpSchema = Schema.Union([
  Schema.Struct({ op: Schema.Literal("put"), key: Schema.String, value: Schema.String, ...LeaseField }),
  Schema.Struct({ op: Schema.Literal("append"), key: Schema.String, value: Schema.String }),
  Schema.Struct({ op: Schema.Literal("delete"), key: Schema.String }),
  Schema.Struct({
    op: Schema.Literal("casPut"),
    key: Schema.String,
    value: Schema.String,
    when: ConditionSchema,
    ...LeaseField,
  }),
  Schema.Struct({ op: Schema.Literal("casDelete"), key: Schema.String, when: ConditionSchema }),
  Schema.Struct({
    op: Schema.Literal("txn"),
    key: Schema.String,
    compare: Schema.Array(CompareSchema),
    success: Schema.Array(TxnOpSchema),
    failure: Schema.Array(TxnOpSchema),
  }),
  Schema.Struct({ op: Schema.Literal("leaseGrant"), key: Schema.Literal(""), ttlMs: Positive }),
  Schema.Struct({ op: Schema.Literal("leaseKeepAlive"), key: Schema.Literal(""), lease: Positive }),
  Schema.Struct({ op: Schema.Literal("leaseRevoke"), key: Schema.Literal(""), lease: Positive }),
])

export const EntrySchema = Schema.Struct({
  value: Schema.String,
  version: Count,
  modRevision: Count,
  createRevision: Count,
})

/** The answer of a conditional write or a transaction (see `KvReply` in the state machine). */
export const KvReplySchema = Schema.Union([
  Schema.Struct({
    kind: Schema.Literal("cas"),
    applied: Schema.Boolean,
    revision: Count,
    entry: Schema.optionalKey(EntrySchema),
  }),
  Schema.Struct({
    kind: Schema.Literal("txn"),
    succeeded: Schema.Boolean,
    revision: Count,
    entries: Schema.Array(Schema.NullOr(EntrySchema)),
  }),
  Schema.Struct({ kind: Schema.Literal("lease"), lease: Positive, ttlMs: Positive }),
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
    "CrossShard",
    "InvalidRequest",
    "LeaseNotFound",
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

/** A success with an answer is listed first: a union member ignores fields it does not name. */
export const CommandOk = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true), reply: KvReplySchema }),
  Schema.Struct({ ok: Schema.Literal(true) }),
])

export const CommandReply = Schema.Union([...CommandOk.members, WrongLeaderReply, KvErrorReply])
export type CommandReply = typeof CommandReply.Type

export const GetRequest = Schema.Struct({ key: Schema.String })
export const GetReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true), value: Schema.String }),
  WrongLeaderReply,
  KvErrorReply,
])
export type GetReply = typeof GetReply.Type

/**
 * Reads beyond `get`, answered after ReadIndex like it: one key with its metadata, or a page of
 * keys under a prefix in byte order (`after` is the last key of the previous page). `shard`, on
 * the sharded service, names the shard whose part of the listing is asked for.
 */
export const ReadRequest = Schema.Union([
  Schema.Struct({ read: Schema.Literal("entry"), key: Schema.String }),
  Schema.Struct({
    read: Schema.Literal("list"),
    prefix: Schema.String,
    after: Schema.optionalKey(Schema.String),
    limit: Schema.optionalKey(Positive),
    keysOnly: Schema.optionalKey(Schema.Boolean),
    shard: Schema.optionalKey(Count),
  }),
])
export type ReadRequest = typeof ReadRequest.Type

export const ListEntrySchema = Schema.Struct({
  key: Schema.String,
  value: Schema.optionalKey(Schema.String),
  version: Count,
  modRevision: Count,
  createRevision: Count,
})

export const ReadOk = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true), entry: Schema.NullOr(EntrySchema) }),
  Schema.Struct({
    ok: Schema.Literal(true),
    entries: Schema.Array(ListEntrySchema),
    more: Schema.Boolean,
    revision: Count,
  }),
])
export type ReadOk = typeof ReadOk.Type

export const ReadReply = Schema.Union([...ReadOk.members, WrongLeaderReply, KvErrorReply])
export type ReadReply = typeof ReadReply.Type

/** One lease (`lease` > 0) or every lease (`lease` 0, keys left out), answered by the leader. */
export const LeaseRequest = Schema.Struct({ lease: Count })

export const LeaseStatusSchema = Schema.Struct({
  lease: Positive,
  ttlMs: Positive,
  /** Time left by the leader's reckoning: never less than the truth (see LeaseDeadlines). */
  remainingMs: Count,
  keys: Schema.Array(Schema.String),
})
export type LeaseStatus = typeof LeaseStatusSchema.Type

export const LeaseReply = Schema.Union([
  Schema.Struct({ ok: Schema.Literal(true), leases: Schema.Array(LeaseStatusSchema) }),
  WrongLeaderReply,
])
export type LeaseReply = typeof LeaseReply.Type

export const StatusReply = Schema.Struct({ ...raftStatusFields, leaderAddress: Schema.String, keys: Count })
export type StatusReply = typeof StatusReply.Type

export const KvCommandMethod = defineMethod("kv.command", CommandRequest, CommandReply, {
  request: fastCommandRequest,
  response: fastCommandReply,
})
export const KvGetMethod = defineMethod("kv.get", GetRequest, GetReply, {
  request: fastGetRequest,
  response: fastGetReply,
})
export const KvReadMethod = defineMethod("kv.read", ReadRequest, ReadReply)
export const KvLeaseMethod = defineMethod("kv.lease", LeaseRequest, LeaseReply)
export const KvStatusMethod = defineMethod("kv.status", Schema.Struct({}), StatusReply)
