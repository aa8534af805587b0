import { isGroupLinearizable } from "./groupSearch.ts"
import { isLinearizable, type KeyOperation, outcomeUnknown } from "./keySearch.ts"
import { casRejected, type Operation, type TxnCompare, type TxnOp, txnSucceeded } from "./operation.ts"
import { shrinkFailure } from "./shrink.ts"
import { checkWithin, StepBudget } from "./stepBudget.ts"

/**
 * Shrinking re-checks many sub-histories, each costing time linear in the key's history and its
 * values; past this size a failure is located instead (the shortest failing prefix) and not shrunk.
 */
const maxShrinkOperations = 2_000

/** Past this many lines, writes that the gets read from are shown only near the operations at fault. */
const maxListedOperations = 24

/**
 * A human-readable account of why a key's history is not linearizable: a small failing sub-history
 * (see shrinkFailure), one operation per line in call order.
 *
 * A lost or stale append on a long-lived key can keep hundreds of writes that the gets read from; those
 * are then listed only when they overlap one of the other operations in time, and counted otherwise.
 */
export const explainFailure = (key: string, ops: readonly KeyOperation[], historySize: number): string => {
  if (ops.length > maxShrinkOperations) return locateFailure(key, ops, historySize)
  const core = shrinkFailure(ops)
  const { operations, readFrom } = core
  let shown = operations.map((_, i) => i)
  if (operations.length > maxListedOperations) {
    const atFault = shown.filter((i) => !readFrom[i])
    const concurrent = shown
      .filter((i) => readFrom[i] && atFault.some((j) => overlap(operations[i]!.operation, operations[j]!.operation)))
      .slice(-Math.max(0, maxListedOperations - atFault.length))
    shown = [...atFault, ...concurrent].sort((a, b) => a - b)
  }
  const omitted = operations.length - shown.length
  const notMinimal = core.minimal ? "" : " (shrinking ran out of steps, so maybe not minimal)"
  return [
    `key ${JSON.stringify(key)}: no order of these ${operations.length} of the history's ${historySize}` +
      ` operations respects both real time and the kv semantics${notMinimal}:`,
    ...shown.map((i) => `  ${describeOperation(operations[i]!.index, operations[i]!.operation)}`),
    ...(omitted > 0
      ? [`  … and ${omitted} more writes that the gets above read from, none concurrent with the others`]
      : []),
  ].join("\n")
}

const overlap = (a: Operation, b: Operation): boolean => a.call <= returnTime(b) && b.call <= returnTime(a)

const returnTime = (operation: Operation): number => (outcomeUnknown(operation) ? Infinity : operation.return)

/** `#index client c [call, return] op(...) -> output`, one operation per line. */
export const describeOperation = (index: number, operation: Operation): string => {
  const unknown = outcomeUnknown(operation)
  const interval = `[${formatTime(operation.call)}, ${unknown ? "?" : formatTime(operation.return)}]`
  const input = operation.input
  const key = quote(input.key)
  const call =
    input.op === "get" || input.op === "delete"
      ? `${input.op}(${key})`
      : input.op === "cas"
        ? `cas(${key}, if ${quote(input.expected)} then ${quote(input.value)})`
        : input.op === "txn"
          ? `txn(if ${input.compare.map(describeCompare).join(" and ") || "true"} then ${describeBranch(input.success)}` +
            ` else ${describeBranch(input.failure)})`
          : `${input.op}(${key}, ${quote(input.value)})`
  const result = unknown
    ? " (outcome unknown)"
    : input.op === "get"
      ? ` -> ${quote(operation.output ?? "")}`
      : input.op === "cas"
        ? ` -> ${operation.output}`
        : input.op === "txn"
          ? ` -> ${operation.output}${(operation.reads ?? []).length > 0 ? ` reading ${(operation.reads ?? []).map(quote).join(", ")}` : ""}`
          : ""
  return `#${index} client ${operation.clientId} ${interval} ${call}${result}`
}

const describeCompare = (c: TxnCompare): string =>
  `${quote(c.key)}.${c.target} ${c.cmp} ${typeof c.value === "string" ? quote(c.value) : c.value}`

const describeBranch = (ops: readonly TxnOp[]): string =>
  `[${ops.map((o) => (o.op === "put" ? `put(${quote(o.key)}, ${quote(o.value)})` : `${o.op}(${quote(o.key)})`)).join(", ")}]`

const formatTime = (time: number): string => (Number.isInteger(time) ? String(time) : time.toFixed(3))

/** Values grow under append; keep both ends of long ones, where the differences usually are. */
const quote = (text: string): string => {
  if (text.length <= 160) return JSON.stringify(text)
  return `${JSON.stringify(text.slice(0, 60))}…(${text.length - 120} more chars)…${JSON.stringify(text.slice(-60))}`
}

/**
 * For a large failing key history: the shortest prefix (in call order) that already fails, found by
 * bisection, and its last operations, where the fault shows.
 */
const locateFailure = (key: string, ops: readonly KeyOperation[], historySize: number): string => {
  const sorted = [...ops].sort((a, b) => a.operation.call - b.operation.call || a.index - b.index)
  const budget = new StepBudget(locateMaxSteps)
  const fails = (length: number): boolean =>
    checkWithin(budget, locateStepsPerCheck, (check) => !isLinearizable(sorted.slice(0, length), check), false)
  let low = 1
  let high = sorted.length
  while (low < high) {
    const mid = Math.floor((low + high) / 2)
    if (fails(mid)) high = mid
    else low = mid + 1
  }
  const tail = sorted.slice(Math.max(0, high - maxListedOperations), high)
  return [
    `key ${JSON.stringify(key)}: its ${ops.length} operations (of the history's ${historySize}) admit no order that` +
      ` respects both real time and the kv semantics; the first ${high} of them in call order already fail` +
      ` (too many to shrink to a minimal core). The last operations of that prefix:`,
    ...tail.map((op) => `  ${describeOperation(op.index, op.operation)}`),
  ].join("\n")
}

/**
 * An account of why the sub-history of keys that transactions touch together is not linearizable.
 *
 * First the history is cut at the earliest instant where it already fails (found by bisection over call
 * times): the operations called by then, those still running at that instant shown as of unknown
 * outcome. A linearizable history stays linearizable cut so (its pending operations may take effect or
 * not), so the cut fails for a reason in the original history, and the list ends where the fault shows.
 * Then operations that wrote nothing (gets, rejected cas, transactions whose branch only read) are
 * dropped while what is left still fails: dropping a read keeps a linearizable history linearizable.
 * Writes all stay, since a kept read may have read from any of them. Every listed set is checked to fail.
 */
export const explainGroupFailure = (
  keys: readonly string[],
  ops: readonly KeyOperation[],
  historySize: number,
): string => {
  const sorted = [...ops].sort((a, b) => a.operation.call - b.operation.call || a.index - b.index)
  const budget = new StepBudget(shrinkGroupMaxSteps)
  const fails = (candidate: readonly KeyOperation[]): boolean =>
    checkWithin(budget, shrinkGroupStepsPerCheck, (check) => !isGroupLinearizable(keys, candidate, check), false)
  const cutAt = (count: number): KeyOperation[] => {
    const instant = sorted[count - 1]!.operation.call
    return sorted.slice(0, count).flatMap((op) => {
      if (outcomeUnknown(op.operation) || op.operation.return <= instant) return [op]
      // Still running at the cut: it may or may not take effect; a read of it says nothing.
      const input = op.operation.input
      if (
        input.op === "get" ||
        (input.op === "txn" && [...input.success, ...input.failure].every((o) => o.op === "get"))
      )
        return []
      const { clientId, call } = op.operation
      return [{ index: op.index, operation: { clientId, input, call, return: Infinity } }]
    })
  }
  let low = 1
  let high = sorted.length
  let kept: readonly KeyOperation[] = sorted
  while (low < high && budget.remaining > 0) {
    const mid = Math.floor((low + high) / 2)
    const cut = cutAt(mid)
    if (fails(cut)) {
      high = mid
      kept = cut
    } else low = mid + 1
  }
  for (let i = kept.length - 1; i >= 0 && budget.remaining > 0; i--) {
    if (!wroteNothing(kept[i]!.operation)) continue
    const candidate = [...kept.slice(0, i), ...kept.slice(i + 1)]
    if (fails(candidate)) kept = candidate
  }
  const shown = kept.slice(-maxListedGroupOperations)
  const omitted = kept.length - shown.length
  return [
    `keys ${keys.map((key) => JSON.stringify(key)).join(", ")} (touched together by transactions): no order of these` +
      ` ${kept.length} of the history's ${historySize} operations respects both real time and the kv semantics` +
      ` (the history cut where it first fails, operations still running there shown as of unknown outcome;` +
      ` every write kept):`,
    ...(omitted > 0 ? [`  … ${omitted} earlier writes not listed`] : []),
    ...shown.map((op) => `  ${describeOperation(op.index, op.operation)}`),
  ].join("\n")
}

/** Steps of locating a large history's failure: each prefix tried, and the bisection in all. */
const locateStepsPerCheck = 2_000_000
const locateMaxSteps = 20_000_000

const shrinkGroupMaxSteps = 2_000_000
/** Steps one candidate cut may take (as a key's shrinking, see shrink.ts). */
const shrinkGroupStepsPerCheck = 200_000
const maxListedGroupOperations = 40

/** Whether a known operation wrote nothing: a get, a rejected cas, a txn whose branch that ran only read. */
const wroteNothing = (operation: Operation): boolean => {
  if (outcomeUnknown(operation)) return false
  const input = operation.input
  if (input.op === "get") return true
  if (input.op === "cas") return operation.output === casRejected
  if (input.op === "txn")
    return (operation.output === txnSucceeded ? input.success : input.failure).every((o) => o.op === "get")
  return false
}
