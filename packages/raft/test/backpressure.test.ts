/** Proves that a leader that cannot commit stops accepting proposals instead of growing its log without bound. */
import { describe, expect } from "bun:test"
import { labTest } from "./support/labTest.ts"

describe("backpressure", () => {
  labTest(
    "a leader cut off from its followers refuses proposals past 16,384 uncommitted entries",
    "packages/raft/test/backpressure.test.ts",
    3,
    {},
    async ({ lab }) => {
      const leader = await lab.checkOneLeader()
      lab.disconnect((leader + 1) % 3)
      lab.disconnect((leader + 2) % 3)
      let accepted = 0
      let refused = 0
      for (let i = 0; i < 20_000; i++) {
        if (lab.startCommand(leader, i).isLeader) accepted++
        else refused++
      }
      expect(accepted).toBeGreaterThan(16_000)
      expect(accepted).toBeLessThanOrEqual(16_385)
      expect(refused).toBe(20_000 - accepted)
      for (let i = 0; i < 3; i++) lab.connect(i)
      // Once connected again the group commits and accepts proposals as before.
      await lab.one(12345, 3, true)
    },
  )
})
