/**
 * Proves that a stopping leader waits until another node leads, not only until it stepped down:
 * stepping down is the target's vote request arriving, and the vote leaves only after this node has
 * written it, so a process that exited at the first "follower" could take the target's only vote
 * along (another replica down) and leave the group without a leader.
 */
import { expect, test } from "bun:test"
import { Effect } from "effect"
import { type HandOffTarget, handOffLeadership } from "../src/process/serve.ts"

test("a stopping leader waits, after stepping down, until the new leader is known", async () => {
  type Seen = { role: "leader" | "follower"; leader: number }
  // Leader, then stepped down with no leader known for a few polls, then node 2 leads.
  const states: Seen[] = [
    { role: "leader", leader: 1 },
    ...Array.from({ length: 5 }, (): Seen => ({ role: "follower", leader: 0 })),
    { role: "follower", leader: 2 },
  ]
  let polls = 0
  let transferred = false
  const raft: HandOffTarget = {
    status: () => ({ id: 1, ...states[Math.min(polls++, states.length - 1)]! }),
    transferLeadership: () =>
      Effect.sync(() => {
        transferred = true
      }),
  }
  await Effect.runPromise(handOffLeadership(raft))
  expect(transferred).toBe(true)
  // It returned only once a status named node 2 the leader (the last state), not at the first follower.
  expect(polls).toBeGreaterThanOrEqual(states.length)
})
