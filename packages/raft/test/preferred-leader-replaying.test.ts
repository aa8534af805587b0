/**
 * Proves that a leader still replaying its restart's log hands no leadership to the preferred
 * member: its followers apply nothing while it replays (they give way to it), so the member would
 * lead with all of the log still to apply. The settling wait starts once the replay is over.
 */
import { expect, test } from "bun:test"
import type { Status } from "../src/core/index.ts"
import { PREFERRED_SETTLE_ELECTIONS, PreferredLeaderWatch } from "../src/node/preferredLeader.ts"

const electionMs = 300
const lookEveryMs = 100

/** A leader (node 1) whose follower 3, the preferred member at its address, holds the log and is heard from. */
const leaderStatus = {
  role: "leader",
  id: 1,
  leadTransferee: 0,
  progress: [
    { id: 2, role: "voter", state: "replicate", match: 50, recentActive: true },
    { id: 3, role: "voter", state: "replicate", match: 50, recentActive: true },
  ],
  membership: {
    members: [
      { id: 1, address: "127.0.0.1:4001" },
      { id: 2, address: "127.0.0.1:4002" },
      { id: 3, address: "127.0.0.1:4003" },
    ],
  },
} as unknown as Status

/** The first time, from `from`, that the watch hands leadership over, looking every lookEveryMs. */
const handOverAt = (watch: PreferredLeaderWatch, from: number, replayingUntil: number): number | undefined => {
  for (let now = from; now < from + 60_000; now += lookEveryMs) {
    const to = watch.look(now, {
      leading: true,
      replaying: now < replayingUntil,
      commit: 50,
      status: () => leaderStatus,
      addressOf: () => undefined,
    })
    if (to !== undefined) {
      expect(to).toBe(3)
      return now
    }
  }
  return undefined
}

test("a replaying leader waits for its replay to end, then the settling time, before it hands over", () => {
  const settleMs = PREFERRED_SETTLE_ELECTIONS * electionMs
  // Not replaying: handed over once the member has been ready for the settling time.
  const steady = handOverAt(new PreferredLeaderWatch("127.0.0.1:4003", { lookEveryMs, electionMs }), 0, 0)
  expect(steady).toBeGreaterThanOrEqual(settleMs)
  expect(steady).toBeLessThan(settleMs + 2 * lookEveryMs)

  // Replaying for 5 s (longer than the settling time): nothing is handed over meanwhile, and the
  // settling time counts from the replay's end.
  const replayEndsAt = 5_000
  const after = handOverAt(new PreferredLeaderWatch("127.0.0.1:4003", { lookEveryMs, electionMs }), 0, replayEndsAt)
  expect(after).toBeGreaterThanOrEqual(replayEndsAt + settleMs)
  expect(after).toBeLessThan(replayEndsAt + settleMs + 2 * lookEveryMs)
})
