/**
 * An idle group costs next to nothing: with no commands, a replica's timers fire for what it must
 * do (a leader's heartbeats, a follower's election deadline), not every tick. Counted in virtual
 * time (the lab's clock: every Effect sleep and simulated datagram delivery is one timer), so the
 * bound is deterministic for a seed.
 */
import { describe, expect } from "bun:test"
import { labTest } from "./support/labTest.ts"

const FILE = "packages/raft/test/node-idle.test.ts"
const IDLE_SECONDS = 5

describe("an idle Raft group", () => {
  labTest(
    "wakes for heartbeats and election deadlines, not every tick, and keeps its leader",
    FILE,
    3,
    {},
    async ({ lab }) => {
      const leader = await lab.checkOneLeader()
      await lab.one(1, 3, false)
      const term = lab.getState(leader).term
      const timers = lab.clock.timersFired
      const rpcs = lab.rpcTotal()
      await lab.sleep(IDLE_SECONDS * 1_000)
      const timersPerSecond = (lab.clock.timersFired - timers) / IDLE_SECONDS
      const rpcsPerSecond = (lab.rpcTotal() - rpcs) / IDLE_SECONDS
      console.log(`idle group of 3: ${timersPerSecond} timers/s, ${rpcsPerSecond} Raft requests/s`)
      // Ticking every 10 ms fires 300 timers a second for three replicas, on top of the datagrams'
      // deliveries (heartbeats at 10 a second per follower, and their answers: 40).
      expect(timersPerSecond).toBeLessThanOrEqual(100)
      // Heartbeats at the configured rate only.
      expect(rpcsPerSecond).toBeLessThanOrEqual(25)
      for (let i = 0; i < 3; i++) expect(lab.getState(i)).toEqual({ term, isLeader: i === leader })
    },
  )
})
