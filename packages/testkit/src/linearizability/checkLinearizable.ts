import { explainFailure, explainGroupFailure } from "./explanation.ts"
import { isGroupLinearizable } from "./groupSearch.ts"
import { isLinearizable, type KeyOperation, outcomeUnknown } from "./keySearch.ts"
import {
  casApplied,
  casRejected,
  inputKeys,
  type Operation,
  type TxnCompare,
  txnFailed,
  txnSucceeded,
  type Verdict,
} from "./operation.ts"
import { SearchBudgetExhausted, StepBudget } from "./stepBudget.ts"

export interface CheckOptions {
  /** Search steps allowed over the whole history (all keys together). */
  readonly maxSteps?: number
}

export const defaultMaxSteps = 20_000_000

/**
 * Whether `history` is linearizable against the kv store.
 *
 * Linearizability is local (Herlihy & Wing): a history is linearizable exactly when the sub-history of
 * each object is, as long as every operation touches one object. A plain operation touches one key, so
 * each key is an object of its own and is checked alone, by the search tuned for long append-heavy keys.
 * A transaction touches several keys at once, and checking them one by one would be unsound: each key's
 * view of two transactions that both saw the same versions and both wrote may be fine on its own, while
 * no single order fits both keys. So keys that any transaction touches together (transitively: a txn on
 * a and b, another on b and c join a, b and c) form one object, whose state is every one of its keys,
 * and its sub-history is searched as a whole, each transaction one atomic step (groupSearch). That keeps
 * the check exact; its cost grows with the group, so tests keep transactions to a few keys.
 *
 * Operations of unknown outcome: a write may take effect at any instant after its call, or never; a get
 * constrains nothing and is dropped, as is a get whose `output` is missing.
 *
 * Throws SearchBudgetExhausted when `maxSteps` runs out: an undecided history is never reported as ok.
 * Throws on malformed operations (a non-finite call, or a return before its call).
 */
export const checkLinearizable = (history: readonly Operation[], opts: CheckOptions = {}): Verdict => {
  const groups = new KeyGroups()
  for (const operation of history) if (operation.input.op === "txn") groups.join(inputKeys(operation.input))

  const byGroup = new Map<string, KeyOperation[]>()
  history.forEach((operation, index) => {
    validate(operation, index)
    if (operation.input.op === "get" && (outcomeUnknown(operation) || operation.output === undefined)) return
    const group = groups.find(operation.input.key)
    let ops = byGroup.get(group)
    if (ops === undefined) {
      ops = []
      byGroup.set(group, ops)
    }
    ops.push({ index, operation })
  })

  const maxSteps = opts.maxSteps ?? defaultMaxSteps
  const budget = new StepBudget(maxSteps)
  for (const [group, ops] of byGroup) {
    const keys = groups.members(group)
    const name = keys.join(", ")
    const searched = keys.length > 1 || ops.some(({ operation }) => operation.input.op === "txn")
    let ok: boolean
    try {
      ok = searched ? isGroupLinearizable(keys, ops, budget) : isLinearizable(ops, budget)
    } catch (error) {
      if (!(error instanceof SearchBudgetExhausted)) throw error
      throw new SearchBudgetExhausted(
        `linearizability check undecided on ${keys.length > 1 ? "keys" : "key"} ${keys.map((key) => JSON.stringify(key)).join(", ")} (${ops.length} operations): ` +
          `${error.message} (maxSteps ${maxSteps}); make the history smaller or raise maxSteps`,
      )
    }
    if (!ok) {
      const explanation = searched
        ? explainGroupFailure(keys, ops, history.length)
        : explainFailure(group, ops, history.length)
      return { ok: false, key: name, explanation }
    }
  }
  return { ok: true }
}

/** Keys joined by the transactions that touch them together (union-find); a key no txn touches is alone. */
class KeyGroups {
  private readonly parent = new Map<string, string>()

  find(key: string): string {
    let root = key
    for (let up = this.parent.get(root); up !== undefined && up !== root; up = this.parent.get(root)) root = up
    // Path compression: later finds on this path take one step.
    for (let at = key; at !== root; ) {
      const up = this.parent.get(at)!
      this.parent.set(at, root)
      at = up
    }
    return root
  }

  join(keys: readonly string[]): void {
    const first = this.find(keys[0]!)
    if (!this.parent.has(first)) this.parent.set(first, first)
    for (const key of keys.slice(1)) {
      const root = this.find(key)
      if (root !== first) this.parent.set(root, first)
    }
  }

  /** The keys of the group whose representative is `group`, sorted. */
  members(group: string): string[] {
    if (!this.parent.has(group)) return [group]
    return [...this.parent.keys()].filter((key) => this.find(key) === group).sort()
  }
}

const validate = (operation: Operation, index: number): void => {
  const { input } = operation
  if (input.op === "cas") {
    if (input.expected === "") throw new Error(`operation #${index}: a cas must expect a non-empty value`)
    if (!outcomeUnknown(operation) && operation.output !== casApplied && operation.output !== casRejected) {
      throw new Error(`operation #${index}: a cas's output is "${casApplied}" or "${casRejected}"`)
    }
  }
  if (input.op === "txn") {
    for (const c of input.compare)
      if (!isCompare(c)) throw new Error(`operation #${index}: malformed compare ${JSON.stringify(c)}`)
    if (!outcomeUnknown(operation)) {
      if (operation.output !== txnSucceeded && operation.output !== txnFailed)
        throw new Error(`operation #${index}: a txn's output is "${txnSucceeded}" or "${txnFailed}"`)
      if (!Array.isArray(operation.reads) || !operation.reads.every((r) => typeof r === "string"))
        throw new Error(`operation #${index}: a txn's reads are a list of strings (one per get of its branch)`)
    }
  }
  if (!Number.isFinite(operation.call))
    throw new Error(`operation #${index}: call time ${operation.call} is not a finite number`)
  if (!outcomeUnknown(operation) && operation.return < operation.call)
    throw new Error(`operation #${index}: returns at ${operation.return}, before its call at ${operation.call}`)
}

const isCompare = (c: TxnCompare): boolean =>
  c.target === "value"
    ? typeof c.value === "string" && (c.cmp === "==" || c.cmp === "!=")
    : c.target === "version" && Number.isSafeInteger(c.value) && ["==", "!=", "<", ">"].includes(c.cmp)
