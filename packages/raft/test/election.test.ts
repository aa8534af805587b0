/** Lab 3A: leader election. */
import { describe, expect } from "bun:test"
import { RAFT_ELECTION_TIMEOUT_MS } from "./support/labHarness.ts"
import { labTest } from "./support/labTest.ts"

const FILE = "packages/raft/test/election.test.ts"

describe("3A: leader election", () => {
  labTest("initial election (TestInitialElection3A)", FILE, 3, {}, async ({ lab }) => {
    await lab.checkOneLeader()
    await lab.sleep(50)
    const term1 = lab.checkTerms()
    expect(term1).toBeGreaterThanOrEqual(1)
    // With no failures the term should not move; the lab only warns, and so do we.
    await lab.sleep(2 * RAFT_ELECTION_TIMEOUT_MS)
    const term2 = lab.checkTerms()
    if (term1 !== term2) console.warn(`warning: term changed from ${term1} to ${term2} with no failures`)
    await lab.checkOneLeader()
  })

  labTest("election after network failure (TestReElection3A)", FILE, 3, {}, async ({ lab }) => {
    const leader1 = await lab.checkOneLeader()
    lab.disconnect(leader1)
    await lab.checkOneLeader()
    // The old leader rejoins; it must not disturb the new one.
    lab.connect(leader1)
    const leader2 = await lab.checkOneLeader()
    // No quorum: no leader may be elected.
    lab.disconnect(leader2)
    lab.disconnect((leader2 + 1) % 3)
    await lab.sleep(2 * RAFT_ELECTION_TIMEOUT_MS)
    lab.checkNoLeader()
    lab.connect((leader2 + 1) % 3)
    await lab.checkOneLeader()
    lab.connect(leader2)
    await lab.checkOneLeader()
  })

  labTest("multiple elections (TestManyElections3A)", FILE, 7, {}, async ({ lab, random }) => {
    await lab.checkOneLeader()
    for (let ii = 1; ii < 10; ii++) {
      const i1 = random.int(7)
      const i2 = random.int(7)
      const i3 = random.int(7)
      lab.disconnect(i1)
      lab.disconnect(i2)
      lab.disconnect(i3)
      // Either the current leader is still alive, or the remaining four elect a new one.
      await lab.checkOneLeader()
      lab.connect(i1)
      lab.connect(i2)
      lab.connect(i3)
    }
    await lab.checkOneLeader()
  })
})
