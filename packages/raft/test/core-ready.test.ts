/** Proves the Ready contract: what to persist, send and apply, in which order, one batch at a time. */
import { describe, expect, test } from "bun:test"
import type { Entry, Message, RaftConfig, RaftCore } from "../src/core/index.ts"
import {
  ackAppends,
  Cluster,
  Disk,
  enc,
  firstAppend,
  makeLeader,
  newCore,
  sent,
  takeReady,
  tickUntil,
} from "./support/simCluster.ts"

const e = (index: number, term: number, data = `e${index}`): Entry => ({ index, term, data: enc(data) })

describe("Ready", () => {
  test("hard state and soft state appear only when they changed", () => {
    const core = newCore(2, [1, 2, 3])
    core.step({ type: "Heartbeat", from: 1, to: 2, term: 1, commit: 0, context: 0 })
    const first = takeReady(core)
    expect(first.hardState).toEqual({ term: 1, vote: 0, commit: 0 })
    expect(first.softState).toEqual({ role: "follower", leader: 1 })
    core.step({ type: "Heartbeat", from: 1, to: 2, term: 1, commit: 0, context: 0 })
    const second = takeReady(core)
    expect(second.hardState).toBeUndefined()
    expect(second.softState).toBeUndefined()
    expect(sent(second)).toEqual([{ type: "HeartbeatResp", from: 2, to: 1, term: 1, context: 0 }])
  })

  test("one Ready is outstanding at a time; what happens meanwhile goes in the next one", () => {
    const core = newCore(2, [1, 2, 3])
    core.step({ type: "Append", from: 1, to: 2, term: 1, prevIndex: 0, prevTerm: 0, entries: [e(1, 1)], commit: 0 })
    const rd = core.ready()
    expect(core.hasReady()).toBe(false)
    expect(() => core.ready()).toThrow("before advance")
    core.step({ type: "Append", from: 1, to: 2, term: 1, prevIndex: 1, prevTerm: 1, entries: [e(2, 1)], commit: 1 })
    expect(() => core.advance({ ...rd })).toThrow("not outstanding")
    core.advance(rd)
    const next = core.ready()
    expect(next.entries).toEqual([e(2, 1)])
    expect(next.hardState).toEqual({ term: 1, vote: 0, commit: 1 })
    // Entry 1 became durable with the previous Ready, so it can be applied now; entry 2 cannot yet.
    expect(next.committedEntries).toEqual([e(1, 1)])
    expect(sent(next).map((m) => (m.type === "AppendResp" ? m.index : -1))).toEqual([2])
  })

  test("entries replaced by a new leader while their Ready was being persisted are written again", () => {
    const core = newCore(2, [1, 2, 3])
    core.step(firstAppend([e(1, 1), e(2, 1), e(3, 1)], 1))
    const rd = core.ready()
    core.step({
      type: "Append",
      from: 3,
      to: 2,
      term: 2,
      prevIndex: 1,
      prevTerm: 1,
      entries: [e(2, 2, "new")],
      commit: 1,
    })
    core.advance(rd)
    const next = core.ready()
    expect(next.entries).toEqual([e(2, 2, "new")])
  })

  test("committed entries per Ready are bounded in bytes, at least one each time", () => {
    const core = newCore(2, [1, 2, 3], { maxCommittedBytesPerReady: 4 })
    const entries = [e(1, 1, "aaa"), e(2, 1, "bbb"), e(3, 1, "ccccccc")]
    core.step({ type: "Append", from: 1, to: 2, term: 1, prevIndex: 0, prevTerm: 0, entries, commit: 3 })
    expect(takeReady(core).committedEntries.map((x) => x.index)).toEqual([1])
    expect(takeReady(core).committedEntries.map((x) => x.index)).toEqual([2])
    expect(takeReady(core).committedEntries.map((x) => x.index)).toEqual([3])
    expect(core.hasReady()).toBe(false)
    expect(core.appliedIndex).toBe(3)
  })
})

describe("restart from RestoredState", () => {
  test("term, vote and commit come back; the log is snapshot + entries; applied starts at the snapshot", () => {
    const core = newCore(
      1,
      [1, 2, 3],
      {},
      {
        hardState: { term: 4, vote: 3, commit: 7 },
        snapshot: { index: 5, term: 2, data: enc("state") },
        entries: [e(6, 3), e(7, 4), e(8, 4)],
      },
    )
    const s = core.status()
    expect([s.term, s.vote, s.commit, s.applied, s.snapshotIndex, s.lastIndex]).toEqual([4, 3, 7, 5, 5, 8])
    expect(core.firstIndex()).toBe(6)
    expect(core.snapshot()?.data).toEqual(enc("state"))
    // The service restores the snapshot itself; entries after it up to commit are re-applied.
    const rd = core.ready()
    expect(rd.committedEntries).toEqual([e(6, 3), e(7, 4)])
    expect(rd.hardState).toBeUndefined()
    expect(rd.entries).toEqual([])
  })

  test("a vote survives a restart: no second vote in the same term", () => {
    const disk = new Disk()
    const before = newCore(3, [1, 2, 3])
    before.step({ type: "Vote", from: 1, to: 3, term: 1, lastLogIndex: 0, lastLogTerm: 0, transfer: false })
    takeReady(before, disk)
    const after = newCore(3, [1, 2, 3], {}, disk.restored())
    after.step({ type: "Vote", from: 2, to: 3, term: 1, lastLogIndex: 0, lastLogTerm: 0, transfer: false })
    expect(sent(after.ready())).toEqual([{ type: "VoteResp", from: 3, to: 2, term: 1, reject: true }])
  })

  test("a vote lost with an unpersisted Ready was never sent, so the node may vote again", () => {
    const disk = new Disk()
    const before = newCore(3, [1, 2, 3])
    before.step({ type: "Vote", from: 1, to: 3, term: 1, lastLogIndex: 0, lastLogTerm: 0, transfer: false })
    const lost = before.ready()
    expect(sent(lost).length).toBe(1)
    // Crash before the Ready is persisted: neither the vote nor the answer happened.
    const after = newCore(3, [1, 2, 3], {}, disk.restored())
    after.step({ type: "Vote", from: 2, to: 3, term: 1, lastLogIndex: 0, lastLogTerm: 0, transfer: false })
    expect(sent(after.ready())).toEqual([{ type: "VoteResp", from: 3, to: 2, term: 1, reject: false }])
  })

  test("entries of a newer term than the stored hard state (a torn write) raise the term, with no vote", () => {
    const core = newCore(
      1,
      [1, 2, 3],
      {},
      {
        hardState: { term: 2, vote: 2, commit: 0 },
        snapshot: undefined,
        entries: [e(1, 3)],
      },
    )
    expect(core.term).toBe(3)
    expect(core.hardState()).toEqual({ term: 3, vote: 0, commit: 0 })
  })

  test("the whole group restarts from its disks and keeps every committed entry", () => {
    const c = new Cluster([1, 2, 3])
    c.elect(1)
    for (const s of ["a", "b", "c"]) c.core(1).propose(enc(s))
    c.stabilize()
    c.core(1).compact(3, enc("state@3"))
    c.node(1).disk.saveSnapshot({ index: 3, term: 1, data: enc("state@3") })
    for (const id of [1, 2, 3]) c.restart(id)
    expect(c.core(1).firstIndex()).toBe(4)
    for (let i = 0; i < 100 && c.leaders().length === 0; i++) {
      c.tickAll()
      c.stabilize()
    }
    const [leader] = c.leaders()
    expect(leader).toBeDefined()
    c.core(leader as number).propose(enc("d"))
    c.stabilize()
    c.tickAll()
    c.stabilize()
    for (const id of [1, 2, 3]) {
      expect(c.core(id).commitIndex).toBe(6)
      expect(c.core(id).termAt(4)).toBe(1)
    }
  })
})

describe("which messages may leave before the Ready is durable", () => {
  const appendResp = (from: number, index: number): Message => ({
    type: "AppendResp",
    from,
    to: 1,
    term: 1,
    index,
    reject: false,
    conflictTerm: 0,
    conflictIndex: 0,
  })

  /** Node 1 leads term 1 of {1,2,3}; both followers hold the no-op, which is committed. */
  const replicatingLeader = (overrides: Partial<RaftConfig> = {}): RaftCore => {
    const core = newCore(1, [1, 2, 3], overrides)
    ackAppends(core, sent(makeLeader(core)))
    takeReady(core)
    expect(core.commitIndex).toBe(1)
    return core
  }

  test("a leader's Appends leave at once, before the entries they carry are durable on the leader", () => {
    const core = replicatingLeader()
    core.propose(enc("a"))
    const rd = core.ready()
    expect(rd.entries).toEqual([e(2, 1, "a")])
    expect(rd.messages).toEqual([
      { type: "Append", from: 1, to: 2, term: 1, prevIndex: 1, prevTerm: 1, entries: [e(2, 1, "a")], commit: 1 },
      { type: "Append", from: 1, to: 3, term: 1, prevIndex: 1, prevTerm: 1, entries: [e(2, 1, "a")], commit: 1 },
    ])
    expect(rd.messagesAfterPersist).toEqual([])
  })

  test("a leader whose Ready also writes a new commit index still sends its Appends at once", () => {
    const core = replicatingLeader()
    core.propose(enc("a"))
    const first = takeReady(core)
    ackAppends(core, first.messages)
    core.propose(enc("b"))
    const rd = core.ready()
    expect(rd.hardState).toEqual({ term: 1, vote: 1, commit: 2 })
    expect(rd.messages.map((m) => [m.type, m.to])).toEqual([
      ["Append", 2],
      ["Append", 3],
    ])
    expect(rd.messagesAfterPersist).toEqual([])
  })

  test("heartbeats and snapshot chunks of a leader leave at once", () => {
    const core = newCore(
      1,
      [1, 2, 3],
      { snapshotChunkBytes: 4 },
      {
        hardState: { term: 1, vote: 0, commit: 5 },
        snapshot: { index: 5, term: 1, data: enc("snapshot") },
        entries: [],
      },
    )
    makeLeader(core)
    // Follower 2 lost everything: it needs the snapshot.
    core.step({
      type: "AppendResp",
      from: 2,
      to: 1,
      term: 2,
      index: 5,
      reject: true,
      conflictTerm: 0,
      conflictIndex: 1,
    })
    core.tick()
    const rd = core.ready()
    expect(rd.messages.map((m) => [m.type, m.to])).toEqual([
      ["Heartbeat", 2],
      ["Heartbeat", 3],
      ["Snap", 2],
      ["Snap", 2],
    ])
    expect(rd.messagesAfterPersist).toEqual([])
  })

  test("a candidate's vote requests wait until its new term and its vote for itself are durable", () => {
    const core = newCore(1, [1, 2, 3])
    tickUntil(core, () => core.role === "candidate")
    const rd = core.ready()
    expect(rd.hardState).toEqual({ term: 1, vote: 1, commit: 0 })
    expect(rd.messages).toEqual([])
    expect(rd.messagesAfterPersist.map((m) => [m.type, m.to, m.term])).toEqual([
      ["Vote", 2, 1],
      ["Vote", 3, 1],
    ])
  })

  test("a vote reply waits until the vote is durable", () => {
    const core = newCore(2, [1, 2, 3])
    core.step({ type: "Vote", from: 1, to: 2, term: 1, lastLogIndex: 0, lastLogTerm: 0, transfer: false })
    const rd = core.ready()
    expect(rd.hardState).toEqual({ term: 1, vote: 1, commit: 0 })
    expect(rd.messages).toEqual([])
    expect(rd.messagesAfterPersist).toEqual([{ type: "VoteResp", from: 2, to: 1, term: 1, reject: false }])
  })

  test("a follower's append and heartbeat responses wait until what they vouch for is durable", () => {
    const core = newCore(2, [1, 2, 3])
    core.step({ type: "Append", from: 1, to: 2, term: 1, prevIndex: 0, prevTerm: 0, entries: [e(1, 1)], commit: 0 })
    core.step({ type: "Heartbeat", from: 1, to: 2, term: 1, commit: 1, context: 0 })
    const rd = core.ready()
    expect(rd.entries).toEqual([e(1, 1)])
    expect(rd.messages).toEqual([])
    expect(rd.messagesAfterPersist).toEqual([
      { ...appendResp(2, 1), from: 2, to: 1 },
      { type: "HeartbeatResp", from: 2, to: 1, term: 1, context: 0 },
    ])
  })

  test("an ack for entries a newer leader replaced before they were written is never sent", () => {
    const core = newCore(2, [1, 2, 3])
    core.step({ type: "Append", from: 1, to: 2, term: 1, prevIndex: 0, prevTerm: 0, entries: [e(1, 1)], commit: 1 })
    core.advance(core.ready())
    // Leader 1 sends entries 2-3; before they reach the disk, leader 3 of term 2 replaces them.
    core.step({
      type: "Append",
      from: 1,
      to: 2,
      term: 1,
      prevIndex: 1,
      prevTerm: 1,
      entries: [e(2, 1), e(3, 1)],
      commit: 1,
    })
    core.step({ type: "Append", from: 3, to: 2, term: 2, prevIndex: 1, prevTerm: 1, entries: [e(2, 2)], commit: 1 })
    const rd = core.ready()
    expect(rd.entries).toEqual([e(2, 2)])
    const acks = sent(rd).filter((m) => m.type === "AppendResp")
    expect(acks).toEqual([
      { type: "AppendResp", from: 2, to: 3, term: 2, index: 2, reject: false, conflictTerm: 0, conflictIndex: 0 },
    ])
  })

  test("a follower acknowledges an installed snapshot only once the snapshot is durable", () => {
    const core = newCore(2, [1, 2, 3])
    const data = enc("state")
    core.step({
      type: "Snap",
      from: 1,
      to: 2,
      term: 1,
      snapshot: { index: 5, term: 1 },
      offset: 0,
      total: data.length,
      chunk: data,
      done: true,
    })
    const rd = core.ready()
    expect(rd.snapshot).toEqual({ index: 5, term: 1, data })
    expect(rd.messages).toEqual([])
    expect(rd.messagesAfterPersist).toEqual([{ ...appendResp(2, 5), from: 2, to: 1 }])
  })

  test("a leader elected before its campaign's Ready was taken sends nothing before the fsync", () => {
    const core = newCore(1, [1, 2, 3])
    tickUntil(core, () => core.role === "candidate")
    core.step({ type: "VoteResp", from: 2, to: 1, term: 1, reject: false })
    expect(core.role).toBe("leader")
    const rd = core.ready()
    expect(rd.hardState).toEqual({ term: 1, vote: 1, commit: 0 })
    expect(rd.messages).toEqual([])
    expect(rd.messagesAfterPersist.map((m) => [m.type, m.to])).toEqual([
      ["Vote", 2],
      ["Vote", 3],
      ["Append", 2],
      ["Append", 3],
    ])
  })

  test("a leader's answer to a stale leader waits, while its Appends in the same Ready leave at once", () => {
    const core = replicatingLeader({ checkQuorum: true })
    core.propose(enc("a"))
    core.step({ type: "Heartbeat", from: 3, to: 1, term: 0, commit: 0, context: 0 })
    const rd = core.ready()
    expect(rd.messages.map((m) => [m.type, m.to])).toEqual([
      ["Append", 2],
      ["Append", 3],
    ])
    expect(rd.messagesAfterPersist).toEqual([
      { type: "AppendResp", from: 1, to: 3, term: 1, index: 0, reject: true, conflictTerm: 0, conflictIndex: 0 },
    ])
  })
})
