export { type CheckOptions, checkLinearizable, defaultMaxSteps } from "./checkLinearizable.ts"
export { describeOperation } from "./explanation.ts"
export { HistoryRecorder, type OperationToken } from "./historyRecorder.ts"
export {
  casApplied,
  casRejected,
  inputKeys,
  type KvInput,
  type Operation,
  type TxnCompare,
  type TxnOp,
  txnFailed,
  txnSucceeded,
  type Verdict,
} from "./operation.ts"
export { SearchBudgetExhausted } from "./stepBudget.ts"
