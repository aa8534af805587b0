import { isLinearizable, type KeyOperation } from "./keySearch.ts"
import type { Operation } from "./operation.ts"
import { checkWithin, StepBudget } from "./stepBudget.ts"

/** Steps the shrinking may spend in total; past that the result still fails, it is just not minimal. */
const shrinkMaxSteps = 300_000

/**
 * Steps one candidate sub-history may take. Dropping operations can turn a history decided in a few
 * thousand steps into one that takes millions (its failure then hides among many orders): one such
 * candidate spent the whole budget, 12 s of a test's time, to explain a history searched in 7 ms.
 */
const shrinkStepsPerCheck = 20_000

/** A failing sub-history of one key. */
export interface FailingCore {
  /** In call order. */
  readonly operations: readonly KeyOperation[]
  /** Per operation: a write that a kept get may have read from (kept for that reason alone). */
  readonly readFrom: readonly boolean[]
  /** False when shrinking ran out of steps before no single operation could be dropped. */
  readonly minimal: boolean
}

/**
 * Shrinks a non-linearizable key history to a small failing sub-history.
 *
 * Chunks of operations (halves, quarters, ... single ones, in call order) are dropped while what is left
 * still fails, then single drops are retried until none succeeds. One rule keeps the result honest: a
 * write that a kept get may have read from is never dropped (see mayReadFrom). Dropping only other
 * writes keeps a linearizable history linearizable (restrict its linearization: every kept get sees the
 * same last reset and the same appends), so what still fails fails for a reason present in the original
 * history, not one made up by the shrinking; without the rule a stale read would shrink to a lone get of
 * a value nobody wrote.
 *
 * Every reported set has been checked to fail; a check that runs out of steps counts as "did not
 * fail", so it can only leave the result larger, never wrong.
 */
export const shrinkFailure = (ops: readonly KeyOperation[]): FailingCore => {
  const sorted = [...ops].sort((a, b) => a.operation.call - b.operation.call || a.index - b.index)
  const budget = new StepBudget(shrinkMaxSteps)
  const fails = (positions: readonly number[]): boolean =>
    checkWithin(
      budget,
      shrinkStepsPerCheck,
      (check) =>
        !isLinearizable(
          positions.map((p) => sorted[p]!),
          check,
        ),
      false,
    )

  const values = valuesOf(sorted)
  const gets = sorted.flatMap(({ operation }, p) =>
    operation.input.op === "get" && operation.output !== undefined ? [p] : [],
  )
  const readersCache: (number[] | undefined)[] = new Array(sorted.length)
  /** The gets (positions) that may have read from the operation at `position`. */
  const readers = (position: number): number[] => {
    let found = readersCache[position]
    if (found === undefined) {
      const write = sorted[position]!.operation
      found = gets.filter((g) => mayReadFrom(write, sorted[g]!.operation, values))
      readersCache[position] = found
    }
    return found
  }

  const isKept = new Uint8Array(sorted.length).fill(1)
  const isReadByKeptGet = (position: number): boolean => readers(position).some((g) => isKept[g])
  let kept = sorted.map((_, p) => p)
  /** Drops kept[start, end) except the writes a remaining get may have read from; true if that still fails. */
  const tryDrop = (start: number, end: number): boolean => {
    const chunk = kept.slice(start, end)
    for (const p of chunk) isKept[p] = 0
    const stay = chunk.filter(isReadByKeptGet)
    if (stay.length < chunk.length) {
      const candidate = [...kept.slice(0, start), ...stay, ...kept.slice(end)]
      if (fails(candidate)) {
        for (const p of stay) isKept[p] = 1
        kept = candidate
        return true
      }
    }
    for (const p of chunk) isKept[p] = 1
    return false
  }

  for (let size = highestPowerOfTwoAtMost(kept.length >>> 1); size >= 1; size >>>= 1) {
    for (let end = kept.length; end > 0 && budget.remaining > 0; end -= size) {
      tryDrop(Math.max(0, end - size), end)
    }
  }
  let dropped = true
  while (dropped && budget.remaining > 0) {
    dropped = false
    for (let i = kept.length - 1; i >= 0 && budget.remaining > 0; i--) {
      if (tryDrop(i, i + 1)) dropped = true
    }
  }

  return {
    operations: kept.map((p) => sorted[p]!),
    readFrom: kept.map(isReadByKeptGet),
    minimal: budget.remaining > 0,
  }
}

const highestPowerOfTwoAtMost = (n: number): number => (n < 1 ? 0 : 2 ** Math.floor(Math.log2(n)))

/** The non-empty values written to a key by puts and by appends. */
interface KeyValues {
  readonly putValues: readonly string[]
  readonly appendValues: readonly string[]
}

const valuesOf = (ops: readonly KeyOperation[]): KeyValues => {
  const putValues: string[] = []
  const appendValues: string[] = []
  for (const { operation } of ops) {
    const input = operation.input
    if ((input.op === "put" || input.op === "cas") && input.value !== "") putValues.push(input.value)
    if (input.op === "append" && input.value !== "") appendValues.push(input.value)
  }
  return { putValues, appendValues }
}

/**
 * Whether `get` may have read from `write`: a put whose value starts what it saw, an append whose value
 * is inside it, or a reset to "" (delete, empty put) called before the get returned when what it saw
 * starts with no put's value, or with some append's value (so its base may have been "").
 */
const mayReadFrom = (write: Operation, get: Operation, key: KeyValues): boolean => {
  const input = write.input
  const output = get.output ?? ""
  if (input.op === "append") return input.value !== "" && output.includes(input.value)
  if ((input.op === "put" || input.op === "cas") && input.value !== "") return output.startsWith(input.value)
  if (input.op === "put" || input.op === "delete")
    return (
      write.call <= get.return &&
      (!key.putValues.some((value) => output.startsWith(value)) ||
        key.appendValues.some((value) => output.startsWith(value)))
    )
  return false
}
