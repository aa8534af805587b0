/**
 * Proves that a campaign asks again the voters that have not answered, every half heartbeat
 * interval, instead of waiting for its next election timeout: a group started together, whose first
 * node up campaigned while the others were not listening yet, elects a leader a few ticks after a
 * second node is up. A voter asked twice answers as it did once; no term moves for it.
 */
import { describe, expect, test } from "bun:test"
import type { NodeId } from "../src/core/types.ts"
import { Cluster, messagesOfType, newCore, sent, takeReady, tickUntil } from "./support/simCluster.ts"

const opts = { preVote: true, checkQuorum: true, electionTicks: 30, heartbeatTicks: 10 }

describe("a campaign asks again the voters that have not answered", () => {
  test("lost pre-votes and votes are sent again to those voters alone, within the election timeout", () => {
    const core = newCore(1, [1, 2, 3], { ...opts, seed: 7 })
    tickUntil(core, () => core.role === "pre-candidate")
    const first = messagesOfType(sent(takeReady(core)), "PreVote")
    expect(first.map((m) => m.to).sort()).toEqual([2, 3])
    // Both lost. Five ticks later (half the heartbeat interval) they go again, to the same voters;
    // a node's ticker, which sleeps until the core is next due, wakes for that.
    expect(core.ticksUntilDue()).toBe(5)
    for (let t = 0; t < 4; t++) core.tick()
    expect(core.ticksUntilDue()).toBe(1)
    expect(core.hasReady() ? messagesOfType(sent(takeReady(core)), "PreVote") : []).toEqual([])
    core.tick()
    const again = messagesOfType(sent(takeReady(core)), "PreVote")
    expect(again).toEqual(first)

    // Voter 3 answers; only voter 2 is asked again (the grant made node 1 a candidate, though).
    core.step({ type: "PreVoteResp", from: 3, to: 1, term: 1, reject: false })
    expect(core.role).toBe("candidate")
    const votes = messagesOfType(sent(takeReady(core)), "Vote")
    expect(votes.map((m) => m.to).sort()).toEqual([2, 3])
    core.step({ type: "VoteResp", from: 2, to: 1, term: 1, reject: true })
    for (let t = 0; t < 5; t++) core.tick()
    const votesAgain = messagesOfType(sent(takeReady(core)), "Vote")
    expect(votesAgain.map((m) => m.to)).toEqual([3])
    expect(votesAgain[0]).toEqual(votes.find((m) => m.to === 3)!)
    core.step({ type: "VoteResp", from: 3, to: 1, term: 1, reject: false })
    expect(core.role).toBe("leader")
    expect(core.term).toBe(1)
  })

  test("a group whose first node up campaigned alone elects a leader ticks after a second node is up", () => {
    for (let seed = 0; seed < 20; seed++) {
      const cluster = new Cluster([1, 2, 3], (id) => ({ ...opts, seed: seed * 10 + id }))
      const up = new Set<NodeId>([1])
      const tick = (id: NodeId) => {
        if (up.has(id)) cluster.tick(id)
      }
      // Nodes not up drop what reaches them and send nothing.
      const listening = (m: { readonly to: NodeId }) => up.has(m.to)
      // Node 1 campaigns alone: nobody hears it.
      tickUntil(cluster.core(1), () => cluster.core(1).role === "pre-candidate")
      cluster.stabilize(listening)
      expect(cluster.core(1).role).toBe("pre-candidate")
      // Node 2 comes up a few ticks later, its own timer far from firing.
      for (let t = 0; t < 3; t++) tick(1)
      cluster.stabilize(listening)
      up.add(2)
      let ticks = 0
      while (cluster.core(1).role !== "leader" && ticks < 60) {
        tick(1)
        tick(2)
        cluster.stabilize(listening)
        ticks++
      }
      // Before, node 1 waited for its next election timeout: 30 to 60 ticks after its campaign.
      expect(cluster.core(1).role).toBe("leader")
      expect(ticks).toBeLessThanOrEqual(5)
      expect(cluster.core(2).leader).toBe(1)
      expect(cluster.core(2).term).toBe(cluster.core(1).term)
    }
  })

  test("a voter asked twice for its vote in a term gives the same answer", () => {
    const cluster = new Cluster([1, 2, 3], (id) => ({ ...opts, preVote: false, seed: id }))
    tickUntil(cluster.core(1), () => cluster.core(1).role === "candidate")
    cluster.processReady(1)
    const requests = cluster.inflight.filter((m) => m.type === "Vote" && m.to === 2)
    expect(requests.length).toBe(1)
    // Voter 2 gets the request twice (the first answer lost): it grants both.
    cluster.inflight = [...requests, ...requests]
    cluster.deliverOnce()
    cluster.processReady(2)
    const answers = messagesOfType(cluster.inflight, "VoteResp")
    expect(answers.map((m) => m.reject)).toEqual([false, false])
    expect(cluster.core(2).term).toBe(cluster.core(1).term)
  })
})
