export { ShardKvWatchPollMethod, ShardWatchPollReply } from "./protocol.ts"
export { type ShardWatchServing, serveShardWatch } from "./serve.ts"
export { type ShardRouting, watchedShards, watchShards } from "./shardWatch.ts"
