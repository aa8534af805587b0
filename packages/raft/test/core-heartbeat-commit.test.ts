/**
 * Proves that a follower commits what a heartbeat says only when its own entry at that index has
 * the term the leader names: a learner that lost its disk and then took a stale leader's entries
 * holds, at an index the current leader recorded as matched before the loss, an entry of another
 * term, and committing it would commit what the group never did (found by sim-raft, seed 630115966).
 */
import { expect, test } from "bun:test"
import type { Heartbeat } from "../src/core/index.ts"
import { enc, firstAppend, newCore } from "./support/simCluster.ts"

/** Follower 2 holding entries 1..3 of term 1, from leader 1, none committed. */
const followerWithTerm1Entries = () => {
  const follower = newCore(2, [1, 2, 3])
  follower.step(firstAppend([1, 2, 3].map((index) => ({ term: 1, index, data: enc(`e${index}`) }))))
  expect(follower.commitIndex).toBe(0)
  return follower
}

const beat = (term: number, commit: number, commitTerm?: number): Heartbeat => ({
  type: "Heartbeat",
  from: 3,
  to: 2,
  term,
  commit,
  context: 0,
  ...(commitTerm === undefined ? {} : { commitTerm }),
})

test("a heartbeat naming another term at its commit index commits nothing", () => {
  const follower = followerWithTerm1Entries()
  follower.step(beat(2, 3, 2))
  expect(follower.commitIndex).toBe(0)
  // Nor beyond the follower's log.
  follower.step(beat(2, 5, 2))
  expect(follower.commitIndex).toBe(0)
})

test("a heartbeat naming the follower's own term there commits through it", () => {
  const follower = followerWithTerm1Entries()
  follower.step(beat(2, 2, 1))
  expect(follower.commitIndex).toBe(2)
})

test("a heartbeat of a leader before commitTerm commits as it always did", () => {
  const follower = followerWithTerm1Entries()
  follower.step(beat(2, 3))
  expect(follower.commitIndex).toBe(3)
})
