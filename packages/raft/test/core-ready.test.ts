/** Proves the Ready contract: what to persist, send and apply, in which order, one batch at a time. */
import { describe, expect, test } from "bun:test"
import type { Entry } from "../src/core/index.ts"
import { Cluster, Disk, enc, newCore, takeReady } from "./support/simCluster.ts"

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
    expect(second.messages).toEqual([{ type: "HeartbeatResp", from: 2, to: 1, term: 1, context: 0 }])
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
    expect(next.messages.map((m) => (m.type === "AppendResp" ? m.index : -1))).toEqual([2])
  })

  test("entries replaced by a new leader while their Ready was being persisted are written again", () => {
    const core = newCore(2, [1, 2, 3])
    core.step({
      type: "Append",
      from: 1,
      to: 2,
      term: 1,
      prevIndex: 0,
      prevTerm: 0,
      entries: [e(1, 1), e(2, 1), e(3, 1)],
      commit: 1,
    })
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
    takeReady(core)
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
    expect(after.ready().messages).toEqual([{ type: "VoteResp", from: 3, to: 2, term: 1, reject: true }])
  })

  test("a vote lost with an unpersisted Ready was never sent, so the node may vote again", () => {
    const disk = new Disk()
    const before = newCore(3, [1, 2, 3])
    before.step({ type: "Vote", from: 1, to: 3, term: 1, lastLogIndex: 0, lastLogTerm: 0, transfer: false })
    const lost = before.ready()
    expect(lost.messages.length).toBe(1)
    // Crash before the Ready is persisted: neither the vote nor the answer happened.
    const after = newCore(3, [1, 2, 3], {}, disk.restored())
    after.step({ type: "Vote", from: 2, to: 3, term: 1, lastLogIndex: 0, lastLogTerm: 0, transfer: false })
    expect(after.ready().messages).toEqual([{ type: "VoteResp", from: 3, to: 2, term: 1, reject: false }])
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
