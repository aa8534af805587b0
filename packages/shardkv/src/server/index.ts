export { ConfigQueries } from "./configQueries.ts"
export { type PullOptions, pullShard } from "./pull.ts"
export { ShardPullBuffer } from "./pullBuffer.ts"
export {
  configQueriesFor,
  makeShardKvServer,
  type ShardKvServerOptions,
  type ShardKvServerShape,
} from "./server.ts"
