/** Proves §5.3 log replication and §5.4.2 commitment (Figure 8), asserting the exact Appends and Readies. */
import { describe, expect, test } from "bun:test"
import type { Append, Entry, Message, RaftConfig, RaftCore } from "../src/core/index.ts"
import {
  ackAppends,
  appendAck,
  Cluster,
  enc,
  firstAppend,
  makeLeader,
  messagesOfType,
  newCore,
  sent,
  takeReady,
} from "./support/simCluster.ts"

const e = (index: number, term: number, data = `e${index}`): Entry => ({ index, term, data: enc(data) })
const noop = (index: number, term: number): Entry => ({ index, term, data: new Uint8Array(0) })

/** Node 1 leads term 1 of {1,2,3}; both followers acknowledged the no-op and are in replicate state. */
const replicatingLeader = (overrides: Partial<RaftConfig> = {}): RaftCore => {
  const core = newCore(1, [1, 2, 3], overrides)
  ackAppends(core, sent(makeLeader(core)))
  takeReady(core)
  expect(core.commitIndex).toBe(1)
  return core
}

describe("§5.3 the leader replicates", () => {
  test("proposals between two Readies travel in one Append per follower, behind the entry both hold", () => {
    const core = replicatingLeader()
    for (const s of ["a", "b", "c"]) expect(core.propose(enc(s))).toEqual({ index: core.lastIndex(), term: 1 })
    const rd = core.ready()
    const entries = [e(2, 1, "a"), e(3, 1, "b"), e(4, 1, "c")]
    expect(rd.entries).toEqual(entries)
    expect(sent(rd)).toEqual([
      { type: "Append", from: 1, to: 2, term: 1, prevIndex: 1, prevTerm: 1, entries, commit: 1 },
      { type: "Append", from: 1, to: 3, term: 1, prevIndex: 1, prevTerm: 1, entries, commit: 1 },
    ])
  })

  test("an entry commits once durable on a majority, the leader's own copy counting only after advance()", () => {
    const core = replicatingLeader()
    core.propose(enc("x"))
    const rd = core.ready()
    // Follower 2 acknowledges before the leader's own write is durable: no majority yet.
    core.step(appendAck(2, 2, 1))
    expect(core.commitIndex).toBe(1)
    core.advance(rd)
    expect(core.commitIndex).toBe(2)
    const next = core.ready()
    // A commit index that alone moved costs no write (it is volatile state, Figure 2).
    expect(next.hardState).toBeUndefined()
    expect(next.committedEntries).toEqual([e(2, 1, "x")])
    // The commit reaches followers with the next message; no extra message just for it.
    expect(sent(next)).toEqual([])
  })

  test("a non-leader refuses proposals and names the leader it knows", () => {
    const core = newCore(2, [1, 2, 3])
    core.step({ type: "Heartbeat", from: 3, to: 2, term: 1, commit: 0, context: 0 })
    expect(core.propose(enc("x"))).toEqual({ notLeader: true, leaderHint: 3 })
    expect(() => replicatingLeader().propose(new Uint8Array(0))).toThrow("needs data")
  })

  test("heartbeats carry min(match, commit) and that entry's term, so a follower never commits past what it is known to hold", () => {
    const core = replicatingLeader()
    core.propose(enc("x"))
    takeReady(core)
    core.step(appendAck(2, 2, 1))
    takeReady(core)
    core.tick()
    const beats = messagesOfType(sent(core.ready()), "Heartbeat")
    expect(beats).toEqual([
      { type: "Heartbeat", from: 1, to: 2, term: 1, commit: 2, context: 0, commitTerm: 1 },
      { type: "Heartbeat", from: 1, to: 3, term: 1, commit: 1, context: 0, commitTerm: 1 },
    ])
  })

  test("batches are bounded by maxAppendBytes (at least one entry each)", () => {
    const core = replicatingLeader({ maxAppendBytes: 5 })
    for (const s of ["aa", "bb", "cc", "dddddddd", "e"]) core.propose(enc(s))
    const toTwo = messagesOfType(sent(core.ready()), "Append").filter((m) => m.to === 2)
    expect(toTwo.map((m) => m.entries.map((x) => x.index))).toEqual([[2, 3], [4], [5], [6]])
    expect(toTwo.map((m) => m.prevIndex)).toEqual([1, 3, 4, 5])
  })

  test("replicate state pipelines Appends up to the inflight window, then waits for acknowledgements", () => {
    const core = replicatingLeader({ maxInflightMessages: 2, maxAppendBytes: 1 })
    for (let i = 0; i < 5; i++) core.propose(enc(`p${i}`))
    const first = messagesOfType(sent(takeReady(core)), "Append").filter((m) => m.to === 2)
    expect(first.map((m) => m.entries.map((x) => x.index))).toEqual([[2], [3]])
    core.step(appendAck(2, 2, 1))
    const second = messagesOfType(sent(core.ready()), "Append").filter((m) => m.to === 2)
    expect(second.map((m) => m.entries.map((x) => x.index))).toEqual([[4]])
  })

  test("probe state keeps one Append in flight until an answer or a heartbeat response", () => {
    const core = newCore(1, [1, 2, 3])
    makeLeader(core)
    core.propose(enc("a"))
    core.propose(enc("b"))
    // Followers are still being probed (the no-op Append is unanswered): nothing more goes out.
    expect(messagesOfType(sent(takeReady(core)), "Append")).toEqual([])
    core.step({ type: "HeartbeatResp", from: 2, to: 1, term: 1, context: 0 })
    const again = messagesOfType(sent(core.ready()), "Append")
    expect(again.map((m) => [m.to, m.prevIndex, m.entries.length])).toEqual([[2, 0, 3]])
  })

  test("a lost Append in replicate state is detected by a heartbeat interval without progress and re-sent", () => {
    const core = replicatingLeader()
    core.propose(enc("lost"))
    takeReady(core)
    const resp = { type: "HeartbeatResp", from: 2, to: 1, term: 1, context: 0 } as const
    core.step(resp)
    expect(messagesOfType(sent(takeReady(core)), "Append").filter((m) => m.to === 2)).toEqual([])
    // An interval (one tick here) later, still no progress.
    core.tick()
    core.step(resp)
    const resent = messagesOfType(sent(core.ready()), "Append").filter((m) => m.to === 2)
    expect(resent.map((m) => [m.prevIndex, m.entries.map((x) => x.index)])).toEqual([[1, [2]]])
  })
})

test("heartbeat answers closer together than an interval (read rounds, aligned groups) take nothing as lost", () => {
  const core = replicatingLeader({ heartbeatTicks: 10, electionTicks: 30 })
  core.propose(enc("in flight"))
  takeReady(core)
  const state2 = () => core.status().progress?.find((p) => p.id === 2)?.state
  // A read round's answers every tick while the Append is on its way: within an interval, nothing.
  for (let tick = 0; tick < 9; tick++) {
    core.step({ type: "HeartbeatResp", from: 2, to: 1, term: 1, context: 0 })
    expect(messagesOfType(sent(takeReady(core)), "Append").filter((m) => m.to === 2)).toEqual([])
    core.tick()
  }
  expect(state2()).toBe("replicate")
  // A whole interval since the first answer without progress: the Append is taken as lost.
  core.tick()
  core.step({ type: "HeartbeatResp", from: 2, to: 1, term: 1, context: 0 })
  expect(state2()).toBe("probe")
  const resent = messagesOfType(sent(core.ready()), "Append").filter((m) => m.to === 2)
  expect(resent.map((m) => m.entries.map((x) => x.index))).toEqual([[2]])
})

describe("§5.3 the follower appends", () => {
  const follower = (entries: Entry[], commit: number, term = 1): RaftCore =>
    newCore(2, [1, 2, 3], {}, { hardState: { term, vote: 0, commit }, snapshot: undefined, entries })

  test("it acknowledges with the last index the Append vouches for", () => {
    const core = follower([e(1, 1)], 1)
    core.step({
      type: "Append",
      from: 1,
      to: 2,
      term: 1,
      prevIndex: 1,
      prevTerm: 1,
      entries: [e(2, 1), e(3, 1)],
      commit: 3,
    })
    const rd = core.ready()
    expect(rd.entries).toEqual([e(2, 1), e(3, 1)])
    expect(rd.hardState).toEqual({ term: 1, vote: 0, commit: 3 })
    expect(sent(rd)).toEqual([appendAck(2, 3, 1)].map((m) => ({ ...m, to: 1 })))
    // Entries 2..3 are committed (on the leader's majority) as this Ready writes them: they are
    // handed out with it, once.
    expect(rd.committedEntries).toEqual([e(1, 1), e(2, 1), e(3, 1)])
    core.advance(rd)
    expect(core.ready().committedEntries).toEqual([])
  })

  test("it commits only up to the last entry of the Append, never its stale entries beyond", () => {
    const core = follower([e(1, 1), e(2, 1), e(3, 1, "stale")], 1)
    core.step({ type: "Append", from: 1, to: 2, term: 2, prevIndex: 1, prevTerm: 1, entries: [e(2, 1)], commit: 3 })
    expect(core.commitIndex).toBe(2)
  })

  test("an old or repeated Append does not truncate what came after it", () => {
    const core = follower([e(1, 1), e(2, 1), e(3, 1), e(4, 1)], 0)
    core.step({ type: "Append", from: 1, to: 2, term: 1, prevIndex: 1, prevTerm: 1, entries: [e(2, 1)], commit: 0 })
    expect(core.lastIndex()).toBe(4)
    expect(core.ready().entries).toEqual([])
  })

  test("an Append reaching below the commit index is answered with the commit index (that part matches)", () => {
    const core = follower([e(1, 1), e(2, 1), e(3, 1)], 3)
    core.step({ type: "Append", from: 1, to: 2, term: 1, prevIndex: 0, prevTerm: 0, entries: [e(1, 1)], commit: 1 })
    expect(sent(core.ready())).toEqual([{ ...appendAck(2, 3, 1), to: 1 }])
  })

  test("a mismatch is rejected with the conflicting term and its first index", () => {
    const core = follower([e(1, 1), e(2, 2), e(3, 2), e(4, 2)], 1, 2)
    core.step({ type: "Append", from: 1, to: 2, term: 3, prevIndex: 4, prevTerm: 3, entries: [], commit: 1 })
    expect(sent(core.ready())).toEqual([
      { type: "AppendResp", from: 2, to: 1, term: 3, index: 4, reject: true, conflictTerm: 2, conflictIndex: 2 },
    ])
  })
})

describe("fast back-off (conflict term / first index of that term)", () => {
  test("the leader skips the follower's whole conflicting term in one round trip", () => {
    // Leader of term 5 whose log diverges from a follower that kept stale entries of term 2.
    const leaderLog = [e(1, 1), e(2, 1), e(3, 1), e(4, 4), e(5, 4)]
    const followerLog = [e(1, 1), e(2, 1), e(3, 1), e(4, 2), e(5, 2), e(6, 2), e(7, 2), e(8, 2)]
    const leader = newCore(
      1,
      [1, 2, 3],
      {},
      { hardState: { term: 4, vote: 1, commit: 3 }, snapshot: undefined, entries: leaderLog },
    )
    const follower = newCore(
      2,
      [1, 2, 3],
      {},
      { hardState: { term: 4, vote: 0, commit: 3 }, snapshot: undefined, entries: followerLog },
    )
    const probe1 = messagesOfType(sent(makeLeader(leader)), "Append").find((m) => m.to === 2) as Append
    expect([probe1.prevIndex, probe1.prevTerm, probe1.entries]).toEqual([5, 4, [noop(6, 5)]])
    follower.step(probe1)
    const rejectReady = follower.ready()
    const reject = sent(rejectReady)[0] as Message
    expect(reject).toEqual({
      type: "AppendResp",
      from: 2,
      to: 1,
      term: 5,
      index: 5,
      reject: true,
      conflictTerm: 2,
      conflictIndex: 4,
    })
    leader.step(reject)
    const probe2 = messagesOfType(sent(leader.ready()), "Append").find((m) => m.to === 2) as Append
    expect([probe2.prevIndex, probe2.prevTerm, probe2.entries.map((x) => x.index)]).toEqual([3, 1, [4, 5, 6]])
    follower.advance(rejectReady)
    follower.step(probe2)
    const rd = follower.ready()
    expect(sent(rd)).toEqual([{ ...appendAck(2, 6, 5), to: 1 }])
    expect(rd.entries.map((x) => [x.index, x.term])).toEqual([
      [4, 4],
      [5, 4],
      [6, 5],
    ])
  })

  test("when the leader holds the conflicting term it resumes right after its last entry of that term", () => {
    const leaderLog = [e(1, 1), e(2, 2), e(3, 2), e(4, 3)]
    const leader = newCore(
      1,
      [1, 2, 3],
      {},
      { hardState: { term: 3, vote: 1, commit: 1 }, snapshot: undefined, entries: leaderLog },
    )
    makeLeader(leader)
    leader.step({
      type: "AppendResp",
      from: 2,
      to: 1,
      term: 4,
      index: 4,
      reject: true,
      conflictTerm: 2,
      conflictIndex: 2,
    })
    const probe = messagesOfType(sent(leader.ready()), "Append").find((m) => m.to === 2) as Append
    expect(probe.prevIndex).toBe(3)
  })

  test("a rejection that is not for the latest probe is ignored", () => {
    const leader = newCore(
      1,
      [1, 2, 3],
      {},
      { hardState: { term: 1, vote: 1, commit: 0 }, snapshot: undefined, entries: [e(1, 1), e(2, 1)] },
    )
    makeLeader(leader)
    leader.step({
      type: "AppendResp",
      from: 2,
      to: 1,
      term: 2,
      index: 1,
      reject: true,
      conflictTerm: 0,
      conflictIndex: 1,
    })
    expect(leader.status().progress?.find((p) => p.id === 2)?.next).toBe(3)
  })
})

describe("§5.4.2 commitment (Figure 8)", () => {
  test("a leader does not commit an entry of an earlier term by counting replicas; its own term's entry commits both", () => {
    const core = newCore(
      1,
      [1, 2, 3],
      {},
      { hardState: { term: 2, vote: 1, commit: 1 }, snapshot: undefined, entries: [e(1, 1), e(2, 2)] },
    )
    makeLeader(core)
    expect(core.term).toBe(3)
    // A majority (leader + follower 2) now stores index 2 of term 2 ...
    core.step(appendAck(2, 2, 3))
    expect(core.commitIndex).toBe(1)
    // ... but only the term-3 no-op at index 3 on a majority commits it.
    core.step(appendAck(2, 3, 3))
    expect(core.commitIndex).toBe(3)
    expect(core.ready().committedEntries.map((x) => [x.index, x.term])).toEqual([
      [2, 2],
      [3, 3],
    ])
  })

  test("the Figure 8 schedule: an old-term entry on a majority is not committed, and is later overwritten", () => {
    // Term 3 is over: S1, S2 hold index 2 of term 2; S5 holds index 2 of term 3; S3, S4 lack index 2.
    const old = [e(1, 1), e(2, 2, "xy")]
    const logs: Record<number, Entry[]> = { 1: old, 2: old, 3: [e(1, 1)], 4: [e(1, 1)], 5: [e(1, 1), e(2, 3)] }
    const c = new Cluster(
      [1, 2, 3, 4, 5],
      () => ({ maxAppendBytes: 1 }),
      (id) => ({ hardState: { term: 3, vote: 0, commit: 1 }, snapshot: undefined, entries: logs[id] ?? [] }),
    )
    // (c) S1 leads term 4 and spreads index 2 (term 2) to S3, but its term-4 no-op does not get there.
    c.isolate(5)
    // S2 takes the no-op. S3 rejects the first probe (it lacks index 2), accepts the retry
    // carrying index 2 alone, and loses every later Append. S4 gets no Append at all.
    let appendsToS3 = 0
    const onlyOldEntryToS3 = (m: Message) =>
      m.type !== "Append" || m.to === 2 || (m.to === 3 && (++appendsToS3 === 1 || m.entries.every((x) => x.index < 3)))
    const s1 = c.core(1)
    while (s1.role === "follower") s1.tick()
    c.stabilize(onlyOldEntryToS3)
    expect(s1.role).toBe("leader")
    expect(s1.term).toBe(4)
    for (const id of [1, 2, 3]) expect(c.core(id).termAt(2)).toBe(2)
    expect(s1.status().progress?.map((p) => p.match)).toEqual([3, 2, 0, 0])
    // The leader knows index 2 is stored on a majority, but it is not of its term: not committed
    // (§5.4.2), and neither is the no-op, which only S1 and S2 hold.
    expect(s1.commitIndex).toBe(1)
    // (d) S1 is cut off; S5, whose last term (3) beats index 2 of term 2, wins with S3 and S4.
    c.heal()
    c.inflight = []
    c.isolate(1)
    c.elect(5)
    c.tickAll()
    c.stabilize()
    expect(c.core(5).term).toBeGreaterThanOrEqual(5)
    for (const id of [2, 3, 4, 5]) expect(c.core(id).termAt(2)).toBe(3)
    expect(c.core(5).commitIndex).toBeGreaterThanOrEqual(3)
  })
})

describe("message economy", () => {
  const settled = (): Cluster => {
    const c = new Cluster([1, 2, 3])
    c.elect(1)
    c.tickAll()
    c.stabilize()
    return c
  }

  test("an idle leader sends one heartbeat per follower per interval: 40 messages for 10 intervals with 3 nodes", () => {
    const c = settled()
    const before = c.sentCount
    for (let i = 0; i < 10; i++) {
      c.tickAll()
      c.stabilize()
    }
    expect(c.sentCount - before).toBe(40)
  })

  test("12 proposals made together cost one Append and one ack per follower", () => {
    const c = settled()
    const before = c.sentCount
    for (let i = 0; i < 12; i++) c.core(1).propose(enc(`v${i}`))
    c.stabilize()
    expect(c.sentCount - before).toBe(4)
    expect(c.node(1).applied.size).toBe(12)
  })

  test("12 proposals one at a time cost 2 Appends + 2 acks each (24 request/response pairs), nothing for commits", () => {
    const c = settled()
    const before = c.sentCount
    for (let i = 0; i < 12; i++) {
      c.core(1).propose(enc(`v${i}`))
      c.stabilize()
      expect(c.core(1).commitIndex).toBe(2 + i)
    }
    expect(c.sentCount - before).toBe(48)
    expect(c.sentCount - before).toBeLessThanOrEqual(2 * 42)
  })
})

describe("malformed input from a peer", () => {
  test("an Append whose entries do not follow prevIndex, or carry a future term, is dropped", () => {
    const core = newCore(2, [1, 2, 3])
    core.step(firstAppend([e(2, 1)]))
    core.step(firstAppend([e(1, 2)]))
    core.step(firstAppend([e(1, 1), e(2, 0)]))
    expect(core.lastIndex()).toBe(0)
    expect(sent(core.ready())).toEqual([])
  })

  test("an acknowledgement beyond the leader's log is ignored", () => {
    const core = replicatingLeader()
    core.step(appendAck(2, 99, 1))
    expect(core.status().progress?.find((p) => p.id === 2)?.match).toBe(1)
    expect(core.commitIndex).toBe(1)
  })
})
