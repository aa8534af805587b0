/** Proves §6.4 ReadIndex: reads are confirmed by a heartbeat round of a majority and never served by a deposed leader. */
import { describe, expect, test } from "bun:test"
import type { Message, RaftConfig, RaftCore } from "../src/core/index.ts"
import { ackAppends, Cluster, enc, makeLeader, messagesOfType, newCore, sent, takeReady } from "./support/simCluster.ts"

const leaderWithCommittedNoop = (overrides: Partial<RaftConfig> = {}): RaftCore => {
  const core = newCore(1, [1, 2, 3], overrides)
  ackAppends(core, sent(makeLeader(core)))
  takeReady(core)
  return core
}
const ack = (from: number, context: number, term = 1): Message => ({
  type: "HeartbeatResp",
  from,
  to: 1,
  term,
  context,
})

describe("§6.4 ReadIndex", () => {
  test("a follower cannot serve reads: readIndex() is false", () => {
    expect(newCore(2, [1, 2, 3]).readIndex(1)).toBe(false)
  })

  test("the leader records its commit index and confirms leadership with one heartbeat round", () => {
    const core = leaderWithCommittedNoop()
    expect(core.readIndex(7)).toBe(true)
    const rd = takeReady(core)
    expect(sent(rd)).toEqual([
      { type: "Heartbeat", from: 1, to: 2, term: 1, commit: 1, context: 1, commitTerm: 1 },
      { type: "Heartbeat", from: 1, to: 3, term: 1, commit: 1, context: 1, commitTerm: 1 },
    ])
    expect(rd.readStates).toEqual([])
    // With the leader itself, one answer makes a majority of three.
    core.step(ack(3, 1))
    expect(core.ready().readStates).toEqual([{ requestId: 7, index: 1 }])
  })

  test("reads asked for between two Readies share one round", () => {
    const core = leaderWithCommittedNoop()
    for (const id of [1, 2, 3]) core.readIndex(id)
    const beats = messagesOfType(sent(takeReady(core)), "Heartbeat")
    expect(beats.map((m) => [m.to, m.context])).toEqual([
      [2, 1],
      [3, 1],
    ])
    core.step(ack(2, 1))
    expect(core.ready().readStates.map((r) => r.requestId)).toEqual([1, 2, 3])
  })

  test("a read's index covers every write committed before it was asked for", () => {
    const core = leaderWithCommittedNoop()
    core.propose(enc("w"))
    takeReady(core)
    core.step({
      type: "AppendResp",
      from: 2,
      to: 1,
      term: 1,
      index: 2,
      reject: false,
      conflictTerm: 0,
      conflictIndex: 0,
    })
    expect(core.commitIndex).toBe(2)
    core.readIndex(9)
    takeReady(core)
    core.step(ack(3, 1))
    expect(core.ready().readStates).toEqual([{ requestId: 9, index: 2 }])
  })

  test("a new leader defers reads until it has committed an entry of its own term", () => {
    const core = newCore(1, [1, 2, 3])
    const elected = makeLeader(core)
    expect(core.readIndex(5)).toBe(true)
    // No heartbeat round yet: the commit index might be stale.
    expect(messagesOfType(sent(takeReady(core)), "Heartbeat")).toEqual([])
    ackAppends(core, sent(elected))
    const rd = takeReady(core)
    expect(messagesOfType(sent(rd), "Heartbeat").map((m) => m.context)).toEqual([1, 1])
    core.step(ack(2, 1))
    expect(core.ready().readStates).toEqual([{ requestId: 5, index: 1 }])
  })

  test("an answer to an earlier round does not confirm a later one", () => {
    const core = leaderWithCommittedNoop()
    core.readIndex(1)
    takeReady(core)
    core.readIndex(2)
    takeReady(core)
    core.step(ack(2, 1))
    expect(takeReady(core).readStates).toEqual([{ requestId: 1, index: 1 }])
    core.step(ack(3, 2))
    expect(core.ready().readStates).toEqual([{ requestId: 2, index: 1 }])
  })

  test("a lost round is retried by the periodic heartbeat, which carries the latest round", () => {
    const core = leaderWithCommittedNoop()
    core.readIndex(4)
    takeReady(core)
    core.tick()
    const beats = messagesOfType(sent(takeReady(core)), "Heartbeat")
    expect(beats.map((m) => m.context)).toEqual([1, 1])
  })

  test("a single-node group answers at once", () => {
    const c = new Cluster([1])
    c.elect(1)
    expect(c.core(1).readIndex(3)).toBe(true)
    expect(c.core(1).ready().readStates).toEqual([{ requestId: 3, index: 1 }])
  })

  test("pending reads are bounded: beyond the limit readIndex() is false", () => {
    const core = leaderWithCommittedNoop({ maxPendingReads: 2 })
    expect(core.readIndex(1)).toBe(true)
    expect(core.readIndex(2)).toBe(true)
    expect(core.readIndex(3)).toBe(false)
  })

  test("a leader that steps down drops its pending reads; late answers confirm nothing", () => {
    const core = leaderWithCommittedNoop()
    core.readIndex(1)
    takeReady(core)
    core.step({
      type: "AppendResp",
      from: 3,
      to: 1,
      term: 2,
      index: 0,
      reject: true,
      conflictTerm: 0,
      conflictIndex: 0,
    })
    expect(core.role).toBe("follower")
    core.step(ack(2, 1, 1))
    const rd = core.ready()
    expect(rd.readStates).toEqual([])
    expect(rd.softState).toEqual({ role: "follower", leader: 0 })
  })

  test("a deposed leader in a minority never serves a read; the new leader's read sees the new write", () => {
    const c = new Cluster([1, 2, 3, 4, 5])
    c.elect(1)
    // Cut the leader and one follower off; the majority elects a new leader and commits a write.
    for (const a of [1, 2]) for (const b of [3, 4, 5]) c.cutLink(a, b)
    c.elect(3)
    c.core(3).propose(enc("new"))
    c.stabilize()
    const written = c.core(3).lastIndex()
    expect(c.core(3).commitIndex).toBe(written)
    // The old leader still believes it leads (no check-quorum here) but cannot confirm a read.
    expect(c.core(1).role).toBe("leader")
    expect(c.core(1).readIndex(100)).toBe(true)
    for (let i = 0; i < 5; i++) {
      c.tickAll()
      c.stabilize()
    }
    expect(c.node(1).readStates).toEqual([])
    c.core(3).readIndex(200)
    c.stabilize()
    expect(c.node(3).readStates).toEqual([{ requestId: 200, index: written }])
  })
})
