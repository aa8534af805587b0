/** Proves §5.2 leader election and §5.4.1 vote restriction, asserting the exact Ready at each step. */
import { describe, expect, test } from "bun:test"
import type { Entry, Message, RaftCore } from "../src/core/index.ts"
import { Cluster, emptyState, newCore, sent, takeReady, tickUntil } from "./support/simCluster.ts"

const entry = (index: number, term: number): Entry => ({ index, term, data: new Uint8Array([index]) })
const vote = (from: number, to: number, term: number, lastLogIndex: number, lastLogTerm: number): Message => ({
  type: "Vote",
  from,
  to,
  term,
  lastLogIndex,
  lastLogTerm,
  transfer: false,
})

describe("§5.2 leader election", () => {
  test("a follower that hears nothing for its randomized timeout campaigns: term+1, votes for itself, asks everyone", () => {
    const core = newCore(1, [1, 2, 3])
    const ticks = tickUntil(core, () => core.role !== "follower")
    expect(ticks).toBeGreaterThanOrEqual(10)
    expect(ticks).toBeLessThan(20)
    const rd = core.ready()
    expect(rd.hardState).toEqual({ term: 1, vote: 1, commit: 0 })
    expect(rd.softState).toEqual({ role: "candidate", leader: 0 })
    expect(sent(rd)).toEqual([vote(1, 2, 1, 0, 0), vote(1, 3, 1, 0, 0)])
    expect(rd.entries).toEqual([])
  })

  test("election timeouts are drawn from [electionTicks, 2*electionTicks) by the seeded PRNG, reproducibly", () => {
    const timeouts = (seed: number) => {
      const core = newCore(1, [1, 2, 3], { seed })
      return tickUntil(core, () => core.role !== "follower")
    }
    const seen = new Set<number>()
    for (let seed = 0; seed < 200; seed++) {
      const t = timeouts(seed)
      expect(t).toBeGreaterThanOrEqual(10)
      expect(t).toBeLessThan(20)
      expect(timeouts(seed)).toBe(t)
      seen.add(t)
    }
    expect(seen.size).toBeGreaterThan(5)
  })

  test("a candidate with a majority of votes becomes leader and appends a no-op of its term", () => {
    const core = newCore(1, [1, 2, 3])
    tickUntil(core, () => core.role === "candidate")
    takeReady(core)
    core.step({ type: "VoteResp", from: 2, to: 1, term: 1, reject: false })
    expect(core.role).toBe("leader")
    const rd = core.ready()
    expect(rd.softState).toEqual({ role: "leader", leader: 1 })
    expect(rd.hardState).toBeUndefined()
    const noop = { term: 1, index: 1, data: new Uint8Array(0) }
    expect(rd.entries).toEqual([noop])
    expect(sent(rd)).toEqual([
      { type: "Append", from: 1, to: 2, term: 1, prevIndex: 0, prevTerm: 0, entries: [noop], commit: 0 },
      { type: "Append", from: 1, to: 3, term: 1, prevIndex: 0, prevTerm: 0, entries: [noop], commit: 0 },
    ])
    // Nothing is committed until the no-op is durable here and on a follower.
    expect(rd.committedEntries).toEqual([])
  })

  test("a candidate rejected by a majority goes back to follower and campaigns again in a later term", () => {
    const core = newCore(1, [1, 2, 3])
    tickUntil(core, () => core.role === "candidate")
    takeReady(core)
    core.step({ type: "VoteResp", from: 2, to: 1, term: 1, reject: true })
    expect(core.role).toBe("candidate")
    core.step({ type: "VoteResp", from: 3, to: 1, term: 1, reject: true })
    expect(core.role).toBe("follower")
    expect(core.term).toBe(1)
    tickUntil(core, () => core.role === "candidate")
    expect(core.term).toBe(2)
  })

  test("a vote request is answered only after the vote is durable: both travel in one Ready", () => {
    const core = newCore(2, [1, 2, 3])
    core.step(vote(1, 2, 1, 0, 0))
    const rd = core.ready()
    expect(rd.hardState).toEqual({ term: 1, vote: 1, commit: 0 })
    expect(sent(rd)).toEqual([{ type: "VoteResp", from: 2, to: 1, term: 1, reject: false }])
  })

  test("one vote per term: a second candidate of the same term is refused, the first one's retry is granted", () => {
    const core = newCore(3, [1, 2, 3])
    core.step(vote(1, 3, 1, 0, 0))
    core.step(vote(2, 3, 1, 0, 0))
    core.step(vote(1, 3, 1, 0, 0))
    expect(sent(core.ready())).toEqual([
      { type: "VoteResp", from: 3, to: 1, term: 1, reject: false },
      { type: "VoteResp", from: 3, to: 2, term: 1, reject: true },
      { type: "VoteResp", from: 3, to: 1, term: 1, reject: false },
    ])
  })

  test("a node that sees a higher term steps down to follower of that term and forgets its vote", () => {
    const core = newCore(1, [1, 2, 3])
    tickUntil(core, () => core.role === "candidate")
    takeReady(core)
    core.step({ type: "Heartbeat", from: 3, to: 1, term: 5, commit: 0, context: 0 })
    expect(core.role).toBe("follower")
    expect(core.term).toBe(5)
    expect(core.leader).toBe(3)
    expect(core.ready().hardState).toEqual({ term: 5, vote: 0, commit: 0 })
  })

  test("Figure 2: a refused vote request raises the term but does not restart the election timer", () => {
    const upToDate = { hardState: { term: 1, vote: 0, commit: 0 }, snapshot: undefined, entries: [entry(1, 1)] }
    // The same seed draws the same timeout: measure it on a twin.
    const twin = newCore(1, [1, 2, 3], {}, upToDate)
    const timeout = tickUntil(twin, () => twin.role !== "follower")
    const core = newCore(1, [1, 2, 3], {}, upToDate)
    for (let i = 0; i < timeout - 1; i++) core.tick()
    // A candidate with a stale log asks; the refusal must not push our own campaign back.
    core.step(vote(3, 1, 2, 0, 0))
    expect(core.term).toBe(2)
    core.tick()
    expect(core.role).toBe("candidate")
    expect(core.term).toBe(3)
  })

  test("granting a vote restarts the election timer", () => {
    const core = newCore(1, [1, 2, 3])
    const fresh = newCore(1, [1, 2, 3])
    const timeout = tickUntil(fresh, () => fresh.role !== "follower")
    for (let i = 0; i < timeout - 1; i++) core.tick()
    core.step(vote(2, 1, 1, 0, 0))
    core.tick()
    expect(core.role).toBe("follower")
  })

  test("a candidate that hears from the leader of its own term becomes its follower", () => {
    const core = newCore(1, [1, 2, 3])
    tickUntil(core, () => core.role === "candidate")
    takeReady(core)
    core.step({ type: "Append", from: 2, to: 1, term: 1, prevIndex: 0, prevTerm: 0, entries: [], commit: 0 })
    expect(core.role).toBe("follower")
    expect(core.leader).toBe(2)
  })

  // Messages from ids outside the membership are heard (thesis §4.1): core-membership.test.ts.
  test("a vote of a lower term is refused with our term and changes nothing; messages for another node are ignored", () => {
    const core = newCore(
      1,
      [1, 2, 3],
      {},
      { hardState: { term: 4, vote: 0, commit: 0 }, snapshot: undefined, entries: [] },
    )
    core.step(vote(2, 1, 3, 9, 3))
    core.step(vote(2, 3, 5, 9, 3))
    expect(core.term).toBe(4)
    const rd = core.ready()
    expect(rd.hardState).toBeUndefined()
    expect(sent(rd)).toEqual([{ type: "VoteResp", from: 1, to: 2, term: 4, reject: true }])
  })

  test("a single-node group elects itself at its first timeout", () => {
    const core = newCore(1, [1])
    tickUntil(core, () => core.role === "leader")
    expect(core.term).toBe(1)
    const rd = core.ready()
    expect(sent(rd)).toEqual([])
    expect(rd.entries.map((e) => e.index)).toEqual([1])
  })

  test("a three-node group elects exactly one leader and all agree on its term", () => {
    const c = new Cluster([1, 2, 3])
    c.elect(2)
    expect(c.leaders()).toEqual([2])
    // Followers learn the no-op's commit with the next heartbeat.
    c.tick(2)
    c.stabilize()
    for (const id of [1, 2, 3]) {
      expect(c.core(id).term).toBe(1)
      expect(c.core(id).leader).toBe(2)
      expect(c.core(id).commitIndex).toBe(1)
    }
  })
})

describe("§5.4.1 election restriction", () => {
  const withLog = (id: number): RaftCore =>
    newCore(
      id,
      [1, 2, 3],
      {},
      { hardState: { term: 2, vote: 0, commit: 1 }, snapshot: undefined, entries: [entry(1, 1), entry(2, 2)] },
    )

  test("a voter refuses a candidate whose last term is older, however long its log", () => {
    const core = withLog(2)
    core.step(vote(1, 2, 3, 9, 1))
    const rd = core.ready()
    expect(sent(rd)).toEqual([{ type: "VoteResp", from: 2, to: 1, term: 3, reject: true }])
    // The term still advanced, with no vote cast.
    expect(rd.hardState).toEqual({ term: 3, vote: 0, commit: 1 })
  })

  test("a voter refuses a candidate with the same last term but a shorter log", () => {
    const core = withLog(2)
    core.step(vote(1, 2, 3, 1, 2))
    expect(sent(core.ready())).toEqual([{ type: "VoteResp", from: 2, to: 1, term: 3, reject: true }])
  })

  test("a voter grants a candidate whose log is at least as up to date", () => {
    const a = withLog(2)
    a.step(vote(1, 2, 3, 2, 2))
    expect(sent(a.ready())).toEqual([{ type: "VoteResp", from: 2, to: 1, term: 3, reject: false }])
    const b = withLog(2)
    b.step(vote(1, 2, 3, 1, 3))
    expect(sent(b.ready())).toEqual([{ type: "VoteResp", from: 2, to: 1, term: 3, reject: false }])
  })

  test("a candidate announces its last log index and term", () => {
    const core = withLog(1)
    tickUntil(core, () => core.role === "candidate")
    expect(sent(core.ready())).toEqual([vote(1, 2, 3, 2, 2), vote(1, 3, 3, 2, 2)])
  })
})

test("a fresh node's first Ready is empty of hard state (nothing changed since restore)", () => {
  const core = newCore(1, [1, 2, 3], {}, emptyState())
  expect(core.hasReady()).toBe(false)
})
