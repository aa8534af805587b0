export {
  type Config,
  configGids,
  configGroups,
  defaultShardCount,
  type Gid,
  initialConfig,
  isGid,
  makeConfig,
  noGroup,
  shardCounts,
  sortGids,
} from "./config.ts"
export {
  type ConfigError,
  type ConfigErrorKind,
  type ConfigOp,
  type ConfigResult,
  configError,
} from "./ops.ts"
export { rebalance } from "./rebalance.ts"
export { hashTagOf, shardOf } from "./shardOf.ts"
export { type ConfigSnapshot, ConfigStateMachine, type IncarnationInfo } from "./state-machine.ts"
