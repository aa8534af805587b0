import { explainFailure } from "./explanation.ts"
import { isLinearizable, type KeyOperation, outcomeUnknown } from "./keySearch.ts"
import { casApplied, casRejected, type Operation, type Verdict } from "./operation.ts"
import { SearchBudgetExhausted, StepBudget } from "./stepBudget.ts"

export interface CheckOptions {
  /** Search steps allowed over the whole history (all keys together). */
  readonly maxSteps?: number
}

export const defaultMaxSteps = 20_000_000

/**
 * Whether `history` is linearizable against the kv store. Each key is checked on its own, which is
 * exact here because every operation touches one key (linearizability is local: Herlihy & Wing).
 *
 * Operations of unknown outcome: a write may take effect at any instant after its call, or never; a get
 * constrains nothing and is dropped, as is a get whose `output` is missing.
 *
 * Throws SearchBudgetExhausted when `maxSteps` runs out: an undecided history is never reported as ok.
 * Throws on malformed operations (a non-finite call, or a return before its call).
 */
export const checkLinearizable = (history: readonly Operation[], opts: CheckOptions = {}): Verdict => {
  const byKey = new Map<string, KeyOperation[]>()
  history.forEach((operation, index) => {
    validate(operation, index)
    if (operation.input.op === "get" && (outcomeUnknown(operation) || operation.output === undefined)) return
    const key = operation.input.key
    let ops = byKey.get(key)
    if (ops === undefined) {
      ops = []
      byKey.set(key, ops)
    }
    ops.push({ index, operation })
  })

  const maxSteps = opts.maxSteps ?? defaultMaxSteps
  const budget = new StepBudget(maxSteps)
  for (const [key, ops] of byKey) {
    let ok: boolean
    try {
      ok = isLinearizable(ops, budget)
    } catch (error) {
      if (!(error instanceof SearchBudgetExhausted)) throw error
      throw new SearchBudgetExhausted(
        `linearizability check undecided on key ${JSON.stringify(key)} (${ops.length} operations): ` +
          `${error.message} (maxSteps ${maxSteps}); make the history smaller or raise maxSteps`,
      )
    }
    if (!ok) return { ok: false, key, explanation: explainFailure(key, ops, history.length) }
  }
  return { ok: true }
}

const validate = (operation: Operation, index: number): void => {
  const { input } = operation
  if (input.op === "cas") {
    if (input.expected === "") throw new Error(`operation #${index}: a cas must expect a non-empty value`)
    if (!outcomeUnknown(operation) && operation.output !== casApplied && operation.output !== casRejected) {
      throw new Error(`operation #${index}: a cas's output is "${casApplied}" or "${casRejected}"`)
    }
  }
  if (!Number.isFinite(operation.call))
    throw new Error(`operation #${index}: call time ${operation.call} is not a finite number`)
  if (!outcomeUnknown(operation) && operation.return < operation.call)
    throw new Error(`operation #${index}: returns at ${operation.return}, before its call at ${operation.call}`)
}
