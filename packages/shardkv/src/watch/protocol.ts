import { KvErrorReply, WatchPollOk, WatchPollRequest, WrongLeaderReply } from "@kv/kvraft"
import { defineMethod } from "@kv/rpc"
import { Schema } from "effect"
import { WrongGroupReply } from "../protocol.ts"

/**
 * The watch poll of the sharded service: kvraft's, on one shard (`shard` names it). `WrongGroup`:
 * this group does not serve the shard now (it moved, or is still arriving): refresh the
 * configuration and ask its owner.
 */
export const ShardWatchPollReply = Schema.Union([
  ...WatchPollOk.members,
  WrongLeaderReply,
  WrongGroupReply,
  KvErrorReply,
])
export type ShardWatchPollReply = typeof ShardWatchPollReply.Type

export const ShardKvWatchPollMethod = defineMethod("shardkv.watch.poll", WatchPollRequest, ShardWatchPollReply)
