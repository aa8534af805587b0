export {
  decodeShardCommand,
  encodeShardCommand,
  parseConfig,
  type ShardCommand,
  type ShardHolder,
} from "./command.ts"
export {
  type GetResult,
  type IgnoredResult,
  ignored,
  type NotReadyResult,
  notReady,
  type ReadResult,
  type ShardResult,
  type WrongGroupResult,
  wrongGroup,
} from "./result.ts"
export { holdsData, type ShardState, servesClients, shardStateCode, shardStateCodes } from "./shardState.ts"
export {
  type DeleteStatus,
  type HandOff,
  type MigrationTask,
  ShardStateMachine,
  type ShardStateMachineOptions,
} from "./shardStateMachine.ts"
