import { defineMethod } from "@kv/rpc"
import { Schema } from "effect"
import { KvErrorReply, WrongLeaderReply } from "../protocol.ts"

/**
 * The watch poll (see docs/client.md "Watch"): a watcher asks for the events of its range after
 * the revision it has; the leader answers at once when it has some (or the range is compacted
 * there), else holds the request up to `waitMs` and then answers with a progress notification.
 */
const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Positive = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

export const WatchPollRequest = Schema.Struct({
  /**
   * Random id of the watcher: a resend of a held poll replaces the one held for the same watcher
   * (one held poll per watcher and address).
   */
  watcher: Positive,
  /** The watcher's poll number: a resend of the same poll keeps the wait it was given first. */
  poll: Positive,
  key: Schema.String,
  /** Whether `key` is a prefix. */
  prefix: Schema.Boolean,
  /** Events after this revision; left out: none, the answer only says where the store is now. */
  afterRevision: Schema.optionalKey(Count),
  maxEvents: Schema.optionalKey(Positive),
  maxBytes: Schema.optionalKey(Positive),
  /** How long the server may hold the poll when it has nothing to send (capped by the server). */
  waitMs: Schema.optionalKey(Count),
  /** The sharded service: the shard whose events are asked for. */
  shard: Schema.optionalKey(Count),
})
export type WatchPollRequest = typeof WatchPollRequest.Type

export const WatchEventSchema = Schema.Struct({
  type: Schema.Literals(["put", "delete"]),
  key: Schema.String,
  value: Schema.optionalKey(Schema.String),
  modRevision: Positive,
  createRevision: Count,
  version: Count,
})

/**
 * `events`: every event of the range in (afterRevision, revision], in revision order (empty: a
 * progress notification). `retryMs`: the server holds as many polls as it will, poll again after
 * this long. `Compacted`: events after `afterRevision` are no longer all kept.
 */
export const WatchPollOk = Schema.Union([
  Schema.Struct({
    ok: Schema.Literal(true),
    events: Schema.Array(WatchEventSchema),
    revision: Count,
    retryMs: Schema.optionalKey(Count),
  }),
  Schema.Struct({
    ok: Schema.Literal(false),
    error: Schema.Literal("Compacted"),
    compactRevision: Count,
    revision: Count,
  }),
])

export const WatchPollReply = Schema.Union([...WatchPollOk.members, WrongLeaderReply, KvErrorReply])
export type WatchPollReply = typeof WatchPollReply.Type

export const KvWatchPollMethod = defineMethod("kv.watch.poll", WatchPollRequest, WatchPollReply)
