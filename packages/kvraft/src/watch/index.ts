export { answerPoll, maxPollBytes, maxPollEvents, nothingToSend, type WatchPollAnswer } from "./answer.ts"
export {
  defaultMaxHeldPolls,
  defaultMaxWaitMs,
  HeldPolls,
  type HeldPollsOptions,
  type PollAnswer,
  type PollService,
} from "./heldPolls.ts"
export {
  eventBytes,
  inRange,
  type WatchAnswer,
  type WatchEvent,
  WatchHistory,
  type WatchHistoryLimits,
  type WatchRange,
} from "./history.ts"
export { pollCallerOptions, type WatchTarget, watchKvGroup, watchRange } from "./kvWatch.ts"
export { type WatchMethods, watchMethods } from "./methods.ts"
export {
  KvWatchPollMethod,
  WatchEventSchema,
  WatchPollOk,
  WatchPollReply,
  WatchPollRequest,
} from "./protocol.ts"
export { serveKvWatch, sweepHeldPolls, WATCH_SWEEP_MS, type WatchServing } from "./serve.ts"
export {
  Compacted,
  defaultWatchWaitMs,
  type PollOutcome,
  type PollStore,
  type WatchError,
  type WatchItem,
  type WatchOptions,
  type WatchProgress,
  WatchRefused,
  watchStore,
  withoutProgress,
} from "./watchStream.ts"
