/** Proves pre-vote (thesis §9.6) and check-quorum (§6.2): a cut-off node cannot disrupt a healthy leader. */
import { describe, expect, test } from "bun:test"
import type { Message } from "../src/core/index.ts"
import { Cluster, newCore, sent, takeReady, tickUntil } from "./support/simCluster.ts"

const opts = { preVote: true, checkQuorum: true }
const heartbeat = (from: number, to: number, term: number): Message => ({
  type: "Heartbeat",
  from,
  to,
  term,
  commit: 0,
  context: 0,
})

describe("thesis §9.6 pre-vote", () => {
  test("a pre-candidate asks for votes in term+1 without changing its term or vote", () => {
    const core = newCore(1, [1, 2, 3], opts)
    tickUntil(core, () => core.role !== "follower")
    expect(core.role).toBe("pre-candidate")
    const rd = core.ready()
    expect(rd.hardState).toBeUndefined()
    expect(rd.softState).toEqual({ role: "pre-candidate", leader: 0 })
    expect(sent(rd)).toEqual([
      { type: "PreVote", from: 1, to: 2, term: 1, lastLogIndex: 0, lastLogTerm: 0 },
      { type: "PreVote", from: 1, to: 3, term: 1, lastLogIndex: 0, lastLogTerm: 0 },
    ])
    expect(core.term).toBe(0)
  })

  test("winning the pre-vote starts the real election", () => {
    const core = newCore(1, [1, 2, 3], opts)
    tickUntil(core, () => core.role === "pre-candidate")
    takeReady(core)
    core.step({ type: "PreVoteResp", from: 3, to: 1, term: 1, reject: false })
    expect(core.role).toBe("candidate")
    expect(core.term).toBe(1)
    const rd = core.ready()
    expect(rd.hardState).toEqual({ term: 1, vote: 1, commit: 0 })
    expect(sent(rd).map((m) => [m.type, m.to, m.term])).toEqual([
      ["Vote", 2, 1],
      ["Vote", 3, 1],
    ])
  })

  test("losing the pre-vote leaves the term untouched", () => {
    const core = newCore(1, [1, 2, 3], opts)
    tickUntil(core, () => core.role === "pre-candidate")
    takeReady(core)
    core.step({ type: "PreVoteResp", from: 2, to: 1, term: 0, reject: true })
    core.step({ type: "PreVoteResp", from: 3, to: 1, term: 0, reject: true })
    expect(core.role).toBe("follower")
    expect(core.term).toBe(0)
  })

  test("a voter without a leader grants a pre-vote but keeps its own term and vote", () => {
    const core = newCore(2, [1, 2, 3], opts)
    core.step({ type: "PreVote", from: 1, to: 2, term: 1, lastLogIndex: 0, lastLogTerm: 0 })
    const rd = core.ready()
    expect(sent(rd)).toEqual([{ type: "PreVoteResp", from: 2, to: 1, term: 1, reject: false }])
    expect(rd.hardState).toBeUndefined()
    expect(core.term).toBe(0)
  })

  test("a voter that heard from its leader within the election timeout refuses pre-votes", () => {
    const core = newCore(2, [1, 2, 3], opts)
    core.step(heartbeat(1, 2, 3))
    takeReady(core)
    core.step({ type: "PreVote", from: 3, to: 2, term: 4, lastLogIndex: 9, lastLogTerm: 3 })
    expect(sent(core.ready())).toEqual([{ type: "PreVoteResp", from: 2, to: 3, term: 3, reject: true }])
    expect(core.term).toBe(3)
    expect(core.leader).toBe(1)
  })

  test("a pre-candidate refused by a voter of a higher term adopts that term", () => {
    const core = newCore(1, [1, 2, 3], opts)
    tickUntil(core, () => core.role === "pre-candidate")
    takeReady(core)
    core.step({ type: "PreVoteResp", from: 2, to: 1, term: 7, reject: true })
    expect(core.role).toBe("follower")
    expect(core.term).toBe(7)
  })

  test("a node cut off and rejoining neither raises the group's term nor deposes its leader", () => {
    const c = new Cluster([1, 2, 3], () => opts)
    c.elect(1)
    c.isolate(3)
    for (let i = 0; i < 100; i++) {
      c.tickAll()
      c.stabilize()
    }
    // It campaigned over and over, but only ever as a pre-candidate.
    expect(c.core(3).term).toBe(1)
    c.heal()
    for (let i = 0; i < 30; i++) {
      c.tickAll()
      c.stabilize()
    }
    expect(c.leaders()).toEqual([1])
    for (const id of [1, 2, 3]) expect(c.core(id).term).toBe(1)
    expect(c.core(3).leader).toBe(1)
  })

  test("without pre-vote the cut-off node's term runs away (what pre-vote prevents)", () => {
    const c = new Cluster([1, 2, 3], () => ({ preVote: false, checkQuorum: true }))
    c.elect(1)
    c.isolate(3)
    for (let i = 0; i < 100; i++) {
      c.tickAll()
      c.stabilize()
    }
    expect(c.core(3).term).toBeGreaterThan(2)
  })
})

describe("§6.2 check-quorum and the leader lease", () => {
  test("a leader that hears from no majority for an election timeout steps down", () => {
    const c = new Cluster([1, 2, 3], () => opts)
    c.elect(1)
    c.isolate(1)
    let ticks = 0
    while (c.core(1).role === "leader" && ticks < 100) {
      c.tick(1)
      c.stabilize()
      ticks++
    }
    expect(c.core(1).role).toBe("follower")
    // It noticed within two election timeouts (one full interval without answers).
    expect(ticks).toBeLessThanOrEqual(20)
  })

  test("a leader that hears from a majority keeps leading, even with one follower gone", () => {
    const c = new Cluster([1, 2, 3], () => opts)
    c.elect(1)
    c.isolate(3)
    for (let i = 0; i < 100; i++) {
      c.tick(1)
      c.stabilize()
    }
    expect(c.core(1).role).toBe("leader")
  })

  test("a follower within its lease ignores a higher-term vote request (no term change, no answer)", () => {
    const core = newCore(2, [1, 2, 3], opts)
    core.step(heartbeat(1, 2, 2))
    takeReady(core)
    core.step({ type: "Vote", from: 3, to: 2, term: 3, lastLogIndex: 5, lastLogTerm: 2, transfer: false })
    expect(core.term).toBe(2)
    expect(core.hasReady()).toBe(false)
  })

  test("once the lease expires the same request is granted", () => {
    const core = newCore(2, [1, 2, 3], opts)
    core.step(heartbeat(1, 2, 2))
    takeReady(core)
    for (let i = 0; i < 10; i++) core.tick()
    core.step({ type: "Vote", from: 3, to: 2, term: 3, lastLogIndex: 5, lastLogTerm: 2, transfer: false })
    expect(core.term).toBe(3)
    expect(sent(core.ready())).toEqual([{ type: "VoteResp", from: 2, to: 3, term: 3, reject: false }])
  })

  test("a node of a higher term answers a stale leader's heartbeat so that it steps down", () => {
    const core = newCore(2, [1, 2, 3], opts, {
      hardState: { term: 5, vote: 0, commit: 0 },
      snapshot: undefined,
      entries: [],
    })
    core.step(heartbeat(1, 2, 3))
    expect(sent(core.ready())).toEqual([
      { type: "AppendResp", from: 2, to: 1, term: 5, index: 0, reject: true, conflictTerm: 0, conflictIndex: 0 },
    ])
  })
})
