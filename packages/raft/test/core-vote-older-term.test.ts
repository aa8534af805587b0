/**
 * Proves that a vote request of an older term is refused with the voter's term (Raft's Figure 2),
 * so the candidate learns the term it must pass. Without it a candidate whose voters hold an older
 * configuration that does not name it hears nothing from them, ever, and the group stays without a
 * leader (found by sim-raft, seed 1814183057).
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
