/**
 * Proves the first election's advance: a node started with `advanceFirstElection` campaigns within
 * [1, electionTicks] ticks, later timeouts are the usual [electionTicks, 2 * electionTicks), and a
 * member restarted that way beside a healthy leader changes no one's term (its early pre-vote is
 * refused by followers that hear from their leader).
 */
import { describe, expect, test } from "bun:test"
import { Cluster, newCore, takeReady, tickUntil } from "./support/simCluster.ts"

const opts = { preVote: true, checkQuorum: true }

describe("the first election after a start comes an election timeout sooner", () => {
  test("the first timeout is in [1, electionTicks]; the ones after it in [electionTicks, 2 * electionTicks)", () => {
    const firsts = new Set<number>()
    for (let seed = 0; seed < 200; seed++) {
      const core = newCore(1, [1, 2, 3], { ...opts, seed, advanceFirstElection: true })
      const first = tickUntil(core, () => core.role === "pre-candidate")
      expect(first).toBeGreaterThanOrEqual(1)
      expect(first).toBeLessThanOrEqual(10)
      firsts.add(first)
      takeReady(core)
      // Nobody answers: the pre-vote is lost, and the next timeout is a full one.
      core.step({ type: "PreVoteResp", from: 2, to: 1, term: 1, reject: true })
      core.step({ type: "PreVoteResp", from: 3, to: 1, term: 1, reject: true })
      expect(core.role).toBe("follower")
      const second = tickUntil(core, () => core.role === "pre-candidate")
      expect(second).toBeGreaterThanOrEqual(10)
      expect(second).toBeLessThan(20)
    }
    // Still spread over the range, so a group started together does not split its votes every time.
    expect(firsts.size).toBeGreaterThan(5)
  })

  test("without it the first timeout is a full one", () => {
    for (let seed = 0; seed < 50; seed++) {
      const core = newCore(1, [1, 2, 3], { ...opts, seed })
      expect(tickUntil(core, () => core.role === "pre-candidate")).toBeGreaterThanOrEqual(10)
    }
  })

  test("a member restarted beside a healthy leader campaigns early but moves no term", () => {
    const cluster = new Cluster([1, 2, 3], () => opts)
    cluster.elect(1)
    const term = cluster.core(1).term
    cluster.restart(3, { advanceFirstElection: true })
    // Node 3 hears nothing from the leader before its shortened timeout runs out.
    const ticks = tickUntil(cluster.core(3), () => cluster.core(3).role === "pre-candidate")
    expect(ticks).toBeLessThanOrEqual(10)
    cluster.stabilize()
    for (const id of [1, 2, 3]) expect(cluster.core(id).term).toBe(term)
    expect(cluster.core(1).role).toBe("leader")
    // The next heartbeat makes it a follower of the same leader.
    cluster.tick(1)
    cluster.stabilize()
    expect(cluster.core(3).role).toBe("follower")
    expect(cluster.core(3).leader).toBe(1)
  })
})
