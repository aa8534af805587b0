/**
 * Proves that a leader's heartbeats say whether its service is still replaying the log it
 * restarted with, only while it is, and that a follower's `leaderReplaying` follows its leader's
 * last heartbeat and is cleared when the term or the leader changes.
 */
import { expect, test } from "bun:test"
import type { Heartbeat } from "../src/core/index.ts"
import { ackAppends, makeLeader, messagesOfType, newCore, sent, takeReady } from "./support/simCluster.ts"

test("a leader's heartbeats carry `replaying` while its service replays, and only then", () => {
  let replaying = true
  const core = newCore(1, [1, 2, 3], { serviceReplaying: () => replaying })
  const elected = sent(makeLeader(core))
  // Said at once, with the new term's first Append.
  expect(messagesOfType(elected, "Heartbeat").map((m) => [m.to, m.replaying])).toEqual([
    [2, true],
    [3, true],
  ])
  ackAppends(core, elected)
  takeReady(core)
  core.readIndex(1)
  const during = messagesOfType(sent(takeReady(core)), "Heartbeat")
  expect(during.map((m) => m.replaying)).toEqual([true, true])
  replaying = false
  core.readIndex(2)
  const after = messagesOfType(sent(takeReady(core)), "Heartbeat")
  expect(after.length).toBe(2)
  for (const m of after) expect("replaying" in m).toBe(false)
})

test("a follower's leaderReplaying is its leader's last heartbeat's word, cleared by a new term", () => {
  const follower = newCore(2, [1, 2, 3])
  const beat = (term: number, replaying: boolean): Heartbeat => ({
    type: "Heartbeat",
    from: 1,
    to: 2,
    term,
    commit: 0,
    context: 0,
    ...(replaying ? { replaying: true as const } : {}),
  })
  expect(follower.leaderReplaying).toBe(false)
  follower.step(beat(1, true))
  expect(follower.leader).toBe(1)
  expect(follower.leaderReplaying).toBe(true)
  follower.step(beat(1, false))
  expect(follower.leaderReplaying).toBe(false)
  follower.step(beat(1, true))
  // A vote request of a later term: no leader is known in it yet.
  follower.step({ type: "Vote", from: 3, to: 2, term: 2, lastLogIndex: 5, lastLogTerm: 1, transfer: false })
  expect(follower.leader).toBe(0)
  expect(follower.leaderReplaying).toBe(false)
})
