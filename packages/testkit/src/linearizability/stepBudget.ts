/**
 * How many more search steps a check may take. Deciding linearizability is NP-complete, so the checker
 * counts work instead of watching a clock, and gives up loudly rather than guessing.
 */
export class StepBudget {
  constructor(public remaining: number) {}
}

/** Thrown when a check runs out of steps: the history was too hard to decide, which is never a pass. */
export class SearchBudgetExhausted extends Error {
  override readonly name = "SearchBudgetExhausted"
}

/**
 * `check` run with at most `perCheck` of `total`'s remaining steps, `total` charged what it used;
 * running out gives `otherwise`. For searches whose verdict may be skipped (a shrinking's
 * candidates): one hard candidate cannot spend what the others need.
 */
export const checkWithin = <A>(
  total: StepBudget,
  perCheck: number,
  check: (budget: StepBudget) => A,
  otherwise: A,
): A => {
  const budget = new StepBudget(Math.min(perCheck, total.remaining))
  const allowed = budget.remaining
  try {
    return check(budget)
  } catch (error) {
    if (error instanceof SearchBudgetExhausted) return otherwise
    throw error
  } finally {
    total.remaining -= allowed - Math.max(0, budget.remaining)
  }
}
