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
