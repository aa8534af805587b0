/** Majority arithmetic over a fixed set of voters. */
import type { NodeId } from "./types.ts"

/** Smallest number of voters that forms a majority of `voters`. */
export const majority = (voters: number): number => Math.floor(voters / 2) + 1

/**
 * The largest value that at least a majority of `values` reach: with matchIndex values, the highest
 * index stored on a majority (§5.3). Sorts `values` in place (callers pass a scratch array).
 */
export const quorumValue = (values: number[]): number => {
  values.sort(descending)
  const v = values[majority(values.length) - 1]
  return v ?? 0
}

const descending = (a: number, b: number): number => b - a

export type VoteResult = "won" | "lost" | "pending"

/** Tally of an election: won once a majority granted, lost once a majority can no longer grant. */
export const voteResult = (voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult => {
  let granted = 0
  let rejected = 0
  for (const id of voters) {
    const v = votes.get(id)
    if (v === true) granted++
    else if (v === false) rejected++
  }
  const q = majority(voters.length)
  if (granted >= q) return "won"
  if (rejected > voters.length - q) return "lost"
  return "pending"
}
