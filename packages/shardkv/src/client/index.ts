export { makeShardKvClient, ShardKvClient, type ShardKvClientOptions } from "./client.ts"
