/** Proves leadership transfer (thesis §3.10): catch the target up, TimeoutNow, an election it wins, or abort. */
import { describe, expect, test } from "bun:test"
import type { RaftCore } from "../src/core/index.ts"
import { ackAppends, Cluster, enc, makeLeader, messagesOfType, newCore, sent, takeReady } from "./support/simCluster.ts"

const opts = { preVote: true, checkQuorum: true }

const leaderWithCaughtUpFollowers = (): RaftCore => {
  const core = newCore(1, [1, 2, 3], opts)
  ackAppends(core, sent(makeLeader(core)))
  takeReady(core)
  return core
}

describe("thesis §3.10 leadership transfer", () => {
  test("to an up-to-date follower: TimeoutNow at once, and proposals are refused meanwhile", () => {
    const core = leaderWithCaughtUpFollowers()
    expect(core.transferLeadership(2)).toBe(true)
    expect(sent(core.ready())).toEqual([{ type: "TimeoutNow", from: 1, to: 2, term: 1 }])
    expect(core.propose(enc("x"))).toEqual({ notLeader: true, leaderHint: 2 })
    expect(core.status().leadTransferee).toBe(2)
  })

  test("to a lagging follower: it is caught up first, then told to campaign", () => {
    const core = leaderWithCaughtUpFollowers()
    core.propose(enc("a"))
    takeReady(core)
    expect(core.transferLeadership(3)).toBe(true)
    expect(messagesOfType(sent(takeReady(core)), "TimeoutNow")).toEqual([])
    core.step({
      type: "AppendResp",
      from: 3,
      to: 1,
      term: 1,
      index: 2,
      reject: false,
      conflictTerm: 0,
      conflictIndex: 0,
    })
    expect(messagesOfType(sent(core.ready()), "TimeoutNow")).toEqual([{ type: "TimeoutNow", from: 1, to: 3, term: 1 }])
  })

  test("the target campaigns at once, skipping pre-vote, flagged so that leased voters still answer", () => {
    const core = newCore(2, [1, 2, 3], opts)
    core.step({ type: "Heartbeat", from: 1, to: 2, term: 1, commit: 0, context: 0 })
    takeReady(core)
    core.step({ type: "TimeoutNow", from: 1, to: 2, term: 1 })
    expect(core.role).toBe("candidate")
    expect(sent(core.ready())).toEqual([
      { type: "Vote", from: 2, to: 1, term: 2, lastLogIndex: 0, lastLogTerm: 0, transfer: true },
      { type: "Vote", from: 2, to: 3, term: 2, lastLogIndex: 0, lastLogTerm: 0, transfer: true },
    ])
  })

  test("a voter inside its leader lease grants a transfer vote", () => {
    const core = newCore(3, [1, 2, 3], opts)
    core.step({ type: "Heartbeat", from: 1, to: 3, term: 1, commit: 0, context: 0 })
    takeReady(core)
    core.step({ type: "Vote", from: 2, to: 3, term: 2, lastLogIndex: 0, lastLogTerm: 0, transfer: true })
    expect(sent(core.ready())).toEqual([{ type: "VoteResp", from: 3, to: 2, term: 2, reject: false }])
  })

  test("a transfer that does not finish within an election timeout is abandoned", () => {
    const core = leaderWithCaughtUpFollowers()
    core.transferLeadership(2)
    takeReady(core)
    for (let i = 0; i < 9; i++) {
      core.tick()
      core.step({ type: "HeartbeatResp", from: 3, to: 1, term: 1, context: 0 })
    }
    expect(core.status().leadTransferee).toBe(2)
    core.tick()
    expect(core.role).toBe("leader")
    expect(core.status().leadTransferee).toBe(0)
    expect(core.propose(enc("x"))).toEqual({ index: 2, term: 1 })
  })

  test("only a leader transfers, and only to another voter", () => {
    const core = leaderWithCaughtUpFollowers()
    expect(core.transferLeadership(1)).toBe(false)
    expect(core.transferLeadership(9)).toBe(false)
    expect(newCore(2, [1, 2, 3]).transferLeadership(3)).toBe(false)
  })

  test("in a group, the target becomes leader of the next term and the old leader follows it", () => {
    const c = new Cluster([1, 2, 3], () => opts)
    c.elect(1)
    c.core(1).propose(enc("before"))
    c.stabilize()
    expect(c.core(1).transferLeadership(3)).toBe(true)
    c.stabilize()
    expect(c.leaders()).toEqual([3])
    expect(c.core(3).term).toBe(2)
    expect(c.core(1).leader).toBe(3)
    expect(c.core(3).propose(enc("after"))).toEqual({ index: 4, term: 2 })
    expect(c.core(1).mostUpToDateFollower()).toBeUndefined()
    expect(c.core(3).mostUpToDateFollower()).toBeDefined()
  })
})
