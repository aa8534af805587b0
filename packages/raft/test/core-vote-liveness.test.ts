/**
 * Proves two rules that keep a group from staying without a leader. A vote request of an older
 * term is refused with the voter's term (Raft's Figure 2), so the candidate learns the term it must
 * pass: without it a candidate whose voters hold an older configuration that does not name it
 * hears nothing from them, ever (sim-raft seed 1814183057). And a candidate asked for its own
 * term's vote by a candidate whose log is ahead stands down for a whole timeout, so the one that
 * can win is not met by a spent vote term after term (seed 60740916, pre-vote off).
 */
import { expect, test } from "bun:test"
import type { RaftCore, Vote } from "../src/core/index.ts"
import { messagesOfType, newCore, sent, takeReady } from "./support/simCluster.ts"

const voteAt = (term: number): Vote => ({
  type: "Vote",
  from: 1,
  to: 3,
  term,
  lastLogIndex: 0,
  lastLogTerm: 0,
  transfer: false,
})

test("a vote request of an older term gets a refusal carrying the voter's term", () => {
  const voter = newCore(3, [1, 2, 3])
  voter.step({ ...voteAt(5), from: 2 })
  expect(voter.term).toBe(5)
  takeReady(voter)
  voter.step(voteAt(3))
  expect(messagesOfType(sent(takeReady(voter)), "VoteResp")).toEqual([
    { type: "VoteResp", from: 3, to: 1, term: 5, reject: true },
  ])
})

/** The role now (a read the compiler does not narrow across steps). */
const roleOf = (core: RaftCore) => core.role

test("a candidate refused with a later term takes it and stands down", () => {
  const candidate = newCore(1, [1, 2, 3], { preVote: false })
  while (roleOf(candidate) !== "candidate") candidate.tick()
  expect(candidate.term).toBe(1)
  candidate.step({ type: "VoteResp", from: 3, to: 1, term: 5, reject: true })
  expect(roleOf(candidate)).toBe("follower")
  expect(candidate.term).toBe(5)
})

test("a candidate asked for its term's vote by a candidate whose log is ahead stands down and waits a whole timeout", () => {
  const candidate = newCore(1, [1, 2, 3], { preVote: false })
  while (roleOf(candidate) !== "candidate") candidate.tick()
  const term = candidate.term
  takeReady(candidate)
  candidate.step({ type: "Vote", from: 3, to: 1, term, lastLogIndex: 5, lastLogTerm: term, transfer: false })
  expect(messagesOfType(sent(takeReady(candidate)), "VoteResp")).toEqual([
    { type: "VoteResp", from: 1, to: 3, term, reject: true },
  ])
  expect(roleOf(candidate)).toBe("follower")
  expect(candidate.term).toBe(term)
  // No campaign of its own before a whole election timeout (the default config's 10 ticks).
  expect(candidate.ticksUntilDue()).toBeGreaterThanOrEqual(10)
  // Its next term's request finds a follower that grants it.
  candidate.step({ type: "Vote", from: 3, to: 1, term: term + 1, lastLogIndex: 5, lastLogTerm: term, transfer: false })
  expect(messagesOfType(sent(takeReady(candidate)), "VoteResp")).toEqual([
    { type: "VoteResp", from: 1, to: 3, term: term + 1, reject: false },
  ])
})

test("a candidate asked by one whose log is not ahead stays a candidate", () => {
  const candidate = newCore(1, [1, 2, 3], { preVote: false })
  while (roleOf(candidate) !== "candidate") candidate.tick()
  const term = candidate.term
  candidate.step({ type: "Vote", from: 3, to: 1, term, lastLogIndex: 0, lastLogTerm: 0, transfer: false })
  expect(roleOf(candidate)).toBe("candidate")
})
