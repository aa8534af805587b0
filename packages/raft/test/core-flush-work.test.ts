/**
 * Proves that while a Ready's write is on its way to the disk, the core hands out (takeDuringFlush)
 * what depends on nothing unflushed — entries committed meanwhile and already durable, reads
 * confirmed meanwhile, a leader's replication traffic in a durable term — and nothing else: no
 * entry that is not durable here, no acknowledgement or vote, no message of a term still being
 * written. The next Ready holds only what was not taken.
 */
import { describe, expect, test } from "bun:test"
import type { Entry, Message, RaftConfig, RaftCore } from "../src/core/index.ts"
import {
  ackAppends,
  appendAck,
  Disk,
  enc,
  firstAppend,
  makeLeader,
  messagesOfType,
  newCore,
  sent,
  takeReady,
} from "./support/simCluster.ts"

const e = (index: number, term: number, data = `e${index}`): Entry => ({ index, term, data: enc(data) })

/** A leader of term 1 in a group of three whose no-op (index 1) is committed and applied. */
const leader = (overrides: Partial<RaftConfig> = {}): RaftCore => {
  const core = newCore(1, [1, 2, 3], overrides)
  ackAppends(core, sent(makeLeader(core)))
  takeReady(core)
  return core
}

const indexes = (entries: readonly Entry[]): number[] => entries.map((x) => x.index)

describe("takeDuringFlush", () => {
  test("an ack arriving while a Ready is outstanding makes the entries it commits available before advance()", () => {
    const core = leader()
    core.propose(enc("a"))
    takeReady(core) // entry 2 is durable on the leader
    core.propose(enc("b"))
    const rd = core.ready() // entry 3 is being written
    expect(indexes(rd.entries)).toEqual([3])
    core.step(appendAck(2, 2))
    const work = core.takeDuringFlush()
    expect(indexes(work.committedEntries)).toEqual([2])
    expect(core.appliedIndex).toBe(2)
    // Handed out once: neither a second take nor the next Ready repeats it.
    expect(core.takeDuringFlush().committedEntries).toEqual([])
    core.advance(rd)
    expect(core.appliedIndex).toBe(2)
    const next = core.ready()
    expect(next.committedEntries).toEqual([])
    core.advance(next)
  })

  test("entries the outstanding Ready is writing are handed out once both followers hold them, not before", () => {
    const core = leader()
    core.propose(enc("a"))
    const rd = core.ready()
    // One follower's ack is no majority while the leader's own write is in flight.
    const [first, second] = messagesOfType(rd.messages, "Append")
    ackAppends(core, [first!])
    expect(core.commitIndex).toBe(1)
    expect(core.takeDuringFlush().committedEntries).toEqual([])
    // Both followers hold it: entry 2 is committed without the leader's disk, and applied at once.
    ackAppends(core, [second!])
    expect(core.commitIndex).toBe(2)
    expect(indexes(core.takeDuringFlush().committedEntries)).toEqual([2])
    expect(core.durableIndex()).toBe(1)
    core.advance(rd)
    expect(core.durableIndex()).toBe(2)
    expect(core.ready().committedEntries).toEqual([])
  })

  test("a follower hands out what the leader says is committed, before its own write, and acks nothing early", () => {
    const core = newCore(2, [1, 2, 3])
    core.step(firstAppend([e(1, 1), e(2, 1)]))
    const rd = core.ready()
    expect(indexes(rd.entries)).toEqual([1, 2])
    // The leader learns of a quorum and says so while this follower's write is still in flight.
    core.step({ type: "Append", from: 1, to: 2, term: 1, prevIndex: 2, prevTerm: 1, entries: [e(3, 1)], commit: 3 })
    core.step({ type: "Heartbeat", from: 1, to: 2, term: 1, commit: 2, context: 0 })
    // Entries 1 and 2 are committed (on the leader's majority): applied while this write of them is
    // in flight. Entry 3 came with a commit of 3 but the heartbeat's lower one does not undo it.
    const work = core.takeDuringFlush()
    expect(indexes(work.committedEntries)).toEqual([1, 2, 3])
    expect(work.readStates).toEqual([])
    // The heartbeat's term is not durable yet (this first Ready holds it): its answer waits.
    expect(work.messages).toEqual([])
    core.advance(rd)
    const next = core.ready()
    // Entry 3 is in this Ready's write, and so is its ack. The heartbeat's answer vouches for no
    // entry and its term is durable now: it need not wait.
    expect(indexes(next.committedEntries)).toEqual([])
    expect(indexes(next.entries)).toEqual([3])
    expect(next.messages.map((m) => m.type)).toEqual(["HeartbeatResp"])
    expect(next.messagesAfterPersist.map((m) => m.type)).toEqual(["AppendResp"])
    expect(messagesOfType(next.messagesAfterPersist, "AppendResp").map((m) => m.index)).toEqual([3])
    core.advance(next)
    expect(core.appliedIndex).toBe(3)
    expect(core.durableIndex()).toBe(3)
  })

  test("a follower applies, during its flush, entries its earlier write made durable and the leader commits now", () => {
    const core = newCore(2, [1, 2, 3])
    core.step({ type: "Append", from: 1, to: 2, term: 1, prevIndex: 0, prevTerm: 0, entries: [e(1, 1)], commit: 0 })
    takeReady(core)
    core.step({ type: "Append", from: 1, to: 2, term: 1, prevIndex: 1, prevTerm: 1, entries: [e(2, 1)], commit: 0 })
    const rd = core.ready()
    core.step({ type: "Append", from: 1, to: 2, term: 1, prevIndex: 2, prevTerm: 1, entries: [e(3, 1)], commit: 1 })
    core.step({ type: "Heartbeat", from: 1, to: 2, term: 1, commit: 1, context: 4 })
    const work = core.takeDuringFlush()
    expect(indexes(work.committedEntries)).toEqual([1])
    // Its term is durable: the heartbeat's answer leaves now (a ReadIndex round waits for it); the
    // acknowledgement of entry 3 waits for the write that will hold it.
    expect(work.messages).toEqual([{ type: "HeartbeatResp", from: 2, to: 1, term: 1, context: 4 }])
    core.advance(rd)
    const next = core.ready()
    expect(next.messages).toEqual([])
    expect(messagesOfType(next.messagesAfterPersist, "AppendResp").map((m) => m.index)).toEqual([3])
    core.advance(next)
  })

  test("a read confirmed while a Ready is outstanding is available at once, its heartbeats sent at once", () => {
    const core = leader()
    core.propose(enc("a"))
    const rd = core.ready()
    expect(core.readIndex(7)).toBe(true)
    const first = core.takeDuringFlush()
    // The round's heartbeats promise nothing about the write in flight: they leave now.
    expect(messagesOfType(first.messages, "Heartbeat").map((m) => [m.to, m.context])).toEqual([
      [2, 1],
      [3, 1],
    ])
    expect(first.readStates).toEqual([])
    core.step({ type: "HeartbeatResp", from: 3, to: 1, term: 1, context: 1 })
    expect(core.takeDuringFlush().readStates).toEqual([{ requestId: 7, index: 1 }])
    core.advance(rd)
    const next = core.ready()
    expect(next.readStates).toEqual([])
    expect(messagesOfType(sent(next), "Heartbeat")).toEqual([])
  })

  test("a proposal made during the flush is replicated at once and written with the next Ready", () => {
    const core = leader()
    core.propose(enc("a"))
    const rd = core.ready()
    core.propose(enc("b"))
    const work = core.takeDuringFlush()
    expect(messagesOfType(work.messages, "Append").map((m) => [m.to, indexes(m.entries)])).toEqual([
      [2, [3]],
      [3, [3]],
    ])
    core.advance(rd)
    const next = core.ready()
    expect(indexes(next.entries)).toEqual([3])
    expect(messagesOfType(sent(next), "Append")).toEqual([])
  })

  test("a leader whose term or vote is still being written sends nothing early", () => {
    const core = newCore(1, [1, 2, 3])
    for (let t = 0; t < 100 && core.role !== "candidate"; t++) core.tick()
    const campaign = core.ready()
    expect(campaign.hardState).toEqual({ term: 1, vote: 1, commit: 0 })
    // Elected while the Ready holding its term and vote is on its way to the disk.
    core.step({ type: "VoteResp", from: 2, to: 1, term: 1, reject: false })
    expect(core.role).toBe("leader")
    core.propose(enc("a"))
    expect(core.takeDuringFlush().messages).toEqual([])
    core.advance(campaign)
    const won = core.ready()
    expect(messagesOfType(won.messagesAfterPersist, "Append")).toHaveLength(0)
    expect(messagesOfType(won.messages, "Append").map((m) => m.to)).toEqual([2, 3])
    core.advance(won)
  })

  test("entries wait behind a snapshot being installed", () => {
    const core = newCore(2, [1, 2, 3])
    core.step({ type: "Append", from: 1, to: 2, term: 1, prevIndex: 0, prevTerm: 0, entries: [e(1, 1)], commit: 0 })
    takeReady(core)
    const snapshot = { index: 5, term: 1, membership: core.membership }
    core.step({
      type: "Snap",
      from: 1,
      to: 2,
      term: 1,
      snapshot,
      offset: 0,
      total: 4,
      chunk: enc("snap"),
      done: true,
    })
    const rd = core.ready()
    expect(rd.snapshot?.index).toBe(5)
    core.step({ type: "Heartbeat", from: 1, to: 2, term: 1, commit: 1, context: 0 })
    // Entry 1 is durable and committed, but the snapshot replaces it: nothing may overtake it.
    expect(core.takeDuringFlush().committedEntries).toEqual([])
    core.advance(rd)
    expect(core.appliedIndex).toBe(5)
    expect(core.ready().committedEntries).toEqual([])
  })

  test("what is taken is bounded in bytes like a Ready's, at least one entry each time", () => {
    const core = leader({ maxCommittedBytesPerReady: 4 })
    for (const data of ["aaa", "bbb", "ccccccc"]) core.propose(enc(data))
    takeReady(core)
    core.propose(enc("d"))
    const rd = core.ready()
    core.step(appendAck(2, 4))
    expect(indexes(core.takeDuringFlush().committedEntries)).toEqual([2])
    expect(indexes(core.takeDuringFlush().committedEntries)).toEqual([3])
    expect(indexes(core.takeDuringFlush().committedEntries)).toEqual([4])
    expect(core.takeDuringFlush().committedEntries).toEqual([])
    core.advance(rd)
    expect(core.appliedIndex).toBe(4)
  })

  test("taken entries follow the outstanding Ready's own committed entries", () => {
    const core = leader({ maxCommittedBytesPerReady: 1 })
    core.propose(enc("a"))
    core.propose(enc("b"))
    takeReady(core)
    core.step(appendAck(2, 3))
    const rd = core.ready()
    expect(indexes(rd.committedEntries)).toEqual([2])
    // The shell applies the Ready's committed entries first; what it takes comes after them.
    expect(indexes(core.takeDuringFlush().committedEntries)).toEqual([3])
    core.advance(rd)
    expect(core.appliedIndex).toBe(3)
  })

  test("the service may compact at an entry it took before the Ready is advanced", () => {
    const disk = new Disk()
    const core = leader()
    core.propose(enc("a"))
    takeReady(core, disk)
    core.propose(enc("b"))
    const rd = core.ready()
    core.step(appendAck(2, 2))
    expect(indexes(core.takeDuringFlush().committedEntries)).toEqual([2])
    core.compact(2, enc("state at 2"))
    expect(core.firstIndex()).toBe(3)
    core.advance(rd)
    expect(core.appliedIndex).toBe(2)
  })

  test("after a restart, committed entries past the first Ready's bound are taken during its flush", () => {
    const entries = [e(1, 1, "aaa"), e(2, 1, "bbb"), e(3, 1, "ccc")]
    const core = newCore(
      1,
      [1, 2, 3],
      { maxCommittedBytesPerReady: 4 },
      { hardState: { term: 1, vote: 1, commit: 3 }, snapshot: undefined, entries },
    )
    // A heartbeat of a newer term makes the first Ready write something.
    core.step({ type: "Heartbeat", from: 2, to: 1, term: 2, commit: 3, context: 0 })
    const rd = core.ready()
    expect(rd.hardState?.term).toBe(2)
    expect(indexes(rd.committedEntries)).toEqual([1])
    expect(indexes(core.takeDuringFlush().committedEntries)).toEqual([2])
    expect(indexes(core.takeDuringFlush().committedEntries)).toEqual([3])
    core.advance(rd)
    expect(core.appliedIndex).toBe(3)
  })

  test("only while a Ready is outstanding", () => {
    const core = leader()
    expect(() => core.takeDuringFlush()).toThrow("no Ready outstanding")
  })

  test("messages other than a leader's replication stay for the next Ready", () => {
    const core = leader({ checkQuorum: true })
    core.propose(enc("a"))
    const rd = core.ready()
    // A stale leader's Append gets a rejection carrying our term: not replication, so it waits.
    core.step({ type: "Append", from: 2, to: 1, term: 0, prevIndex: 0, prevTerm: 0, entries: [], commit: 0 })
    const work = core.takeDuringFlush()
    expect(work.messages.filter((m: Message) => m.type !== "Append" && m.type !== "Heartbeat")).toEqual([])
    core.advance(rd)
    expect(messagesOfType(sent(core.ready()), "AppendResp").map((m) => [m.to, m.reject])).toEqual([[2, true]])
  })
})
