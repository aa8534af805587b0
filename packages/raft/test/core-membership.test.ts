/**
 * Proves membership changes one server at a time (thesis §4.1–4.3): the exact Ready of each change,
 * learners that receive the log but never campaign or count, one change in flight, a leader that
 * removes itself, and membership that survives restarts through the log and snapshots.
 */
import { describe, expect, test } from "bun:test"
import {
  type Entry,
  type Membership,
  type Message,
  type RaftConfig,
  type RaftCore,
  type RestoredState,
  votersMembership,
} from "../src/core/index.ts"
import { ackAppends, Disk, enc, makeLeader, messagesOfType, newCore, sent, takeReady } from "./support/simCluster.ts"

const opts: Partial<RaftConfig> = { preVote: false, checkQuorum: false }
const EMPTY = new Uint8Array(0)

const withLearner = (voters: readonly number[], learner: number): Membership => ({
  members: [
    ...votersMembership(voters).members,
    { id: learner, role: "learner" as const, address: `127.0.0.1:${7000 + learner}` },
  ].sort((a, b) => a.id - b.id),
})

/** A log whose first entry is a committed configuration: voters 1–3 and learner 4. */
const learnerLog = (): RestoredState => ({
  hardState: { term: 1, vote: 0, commit: 1 },
  snapshot: undefined,
  entries: [{ term: 1, index: 1, data: EMPTY, config: withLearner([1, 2, 3], 4) }],
})

/** Node 1 leads voters 1–3 and has committed its no-op (index 1, term 1). */
const readyLeader = (overrides: Partial<RaftConfig> = opts, restored?: RestoredState, disk?: Disk): RaftCore => {
  const core = newCore(1, [1, 2, 3], overrides, restored)
  ackAppends(core, sent(makeLeader(core, disk)))
  takeReady(core, disk)
  return core
}

const ack = (core: RaftCore, from: number, index: number): void =>
  core.step({
    type: "AppendResp",
    from,
    to: 1,
    term: core.term,
    index,
    reject: false,
    conflictTerm: 0,
    conflictIndex: 0,
  })

const appendsTo = (msgs: readonly Message[], to: number) => messagesOfType(msgs, "Append").filter((m) => m.to === to)

describe("learners (thesis §4.2.1)", () => {
  test("adding a learner appends one configuration entry that takes effect at once; the learner is sent the log", () => {
    const core = readyLeader()
    const added = withLearner([1, 2, 3], 4)
    expect(core.proposeMembership({ type: "add-learner", id: 4, address: "127.0.0.1:7004" })).toEqual({
      index: 2,
      term: 1,
      membership: added,
    })
    expect(core.membership).toEqual(added)
    const rd = core.ready()
    expect(rd.entries).toEqual([{ term: 1, index: 2, data: EMPTY, config: added }])
    // Every member gets the entry; the learner, of whose log nothing is known, is probed with it.
    expect(rd.messages).toEqual([
      { type: "Append", from: 1, to: 2, term: 1, prevIndex: 1, prevTerm: 1, entries: rd.entries, commit: 1 },
      { type: "Append", from: 1, to: 3, term: 1, prevIndex: 1, prevTerm: 1, entries: rd.entries, commit: 1 },
      { type: "Append", from: 1, to: 4, term: 1, prevIndex: 1, prevTerm: 1, entries: rd.entries, commit: 1 },
    ])
    expect(rd.messagesAfterPersist).toEqual([])
    core.advance(rd)
    // A fresh learner answers the probe with where its log ends; it is sent everything from there.
    core.step({
      type: "AppendResp",
      from: 4,
      to: 1,
      term: 1,
      index: 1,
      reject: true,
      conflictTerm: 0,
      conflictIndex: 1,
    })
    const catchUp = core.ready()
    expect(appendsTo(sent(catchUp), 4)).toEqual([
      {
        type: "Append",
        from: 1,
        to: 4,
        term: 1,
        prevIndex: 0,
        prevTerm: 0,
        entries: [
          { term: 1, index: 1, data: EMPTY },
          { term: 1, index: 2, data: EMPTY, config: added },
        ],
        commit: 1,
      },
    ])
    core.advance(catchUp)
    expect(core.status().progress?.find((p) => p.id === 4)?.role).toBe("learner")
  })

  test("a learner's acknowledgement commits nothing; a voter's does", () => {
    const core = readyLeader()
    core.proposeMembership({ type: "add-learner", id: 4, address: "127.0.0.1:7004" })
    takeReady(core)
    core.propose(enc("x"))
    takeReady(core)
    ack(core, 4, 3)
    expect(core.commitIndex).toBe(1)
    expect(core.hasReady()).toBe(false)
    ack(core, 2, 3)
    expect(core.commitIndex).toBe(3)
    expect(core.ready().committedEntries.map((e) => e.index)).toEqual([2, 3])
  })

  test("a learner never campaigns, whatever its timer or a TimeoutNow says", () => {
    const core = newCore(4, [], opts, learnerLog())
    expect(core.status().self).toBe("learner")
    takeReady(core)
    for (let t = 0; t < 500; t++) core.tick()
    core.step({ type: "TimeoutNow", from: 1, to: 4, term: 1 })
    expect(core.role).toBe("follower")
    expect(core.term).toBe(1)
    expect(core.hasReady()).toBe(false)
  })

  test("a candidate asks only voters, and a learner's grant does not count", () => {
    const core = newCore(1, [1, 2, 3], opts, learnerLog())
    takeReady(core)
    for (let t = 0; t < 100 && core.role !== "candidate"; t++) core.tick()
    const rd = takeReady(core)
    expect(sent(rd)).toEqual([
      { type: "Vote", from: 1, to: 2, term: 2, lastLogIndex: 1, lastLogTerm: 1, transfer: false },
      { type: "Vote", from: 1, to: 3, term: 2, lastLogIndex: 1, lastLogTerm: 1, transfer: false },
    ])
    core.step({ type: "VoteResp", from: 4, to: 1, term: 2, reject: false })
    expect(core.role).toBe("candidate")
    core.step({ type: "VoteResp", from: 3, to: 1, term: 2, reject: false })
    expect(core.role).toBe("leader")
  })

  test("ReadIndex needs a majority of voters: a learner's heartbeat answer confirms nothing", () => {
    const core = newCore(1, [1, 2, 3], opts, learnerLog())
    ackAppends(core, sent(makeLeader(core)))
    takeReady(core)
    expect(core.readIndex(7)).toBe(true)
    const round = messagesOfType(sent(takeReady(core)), "Heartbeat")
    expect(round.map((m) => m.to)).toEqual([2, 3, 4])
    const context = round[0]?.context ?? 0
    core.step({ type: "HeartbeatResp", from: 4, to: 1, term: core.term, context })
    expect(core.hasReady()).toBe(false)
    core.step({ type: "HeartbeatResp", from: 2, to: 1, term: core.term, context })
    expect(core.ready().readStates).toEqual([{ requestId: 7, index: 2 }])
  })

  test("check-quorum counts voters: a leader hearing only its learner steps down", () => {
    const core = newCore(1, [1, 2, 3], { checkQuorum: true, preVote: true }, learnerLog())
    ackAppends(core, sent(makeLeader(core)))
    takeReady(core)
    // The first check still sees the voters' acks of the no-op; the second sees only the learner.
    for (let t = 0; t < 30 && core.role === "leader"; t++) {
      core.tick()
      core.step({ type: "HeartbeatResp", from: 4, to: 1, term: core.term, context: 0 })
      if (core.hasReady()) takeReady(core)
    }
    expect(core.role).toBe("follower")
  })

  test("promoting the learner makes it count: a majority of four voters is three", () => {
    const core = newCore(1, [1, 2, 3], opts, learnerLog())
    ackAppends(core, sent(makeLeader(core)))
    takeReady(core)
    const promoted = votersMembership([1, 2, 3, 4]).members.map((m) =>
      m.id === 4 ? { ...m, address: "127.0.0.1:7004" } : m,
    )
    expect(core.proposeMembership({ type: "promote", id: 4 })).toEqual({
      index: 3,
      term: 2,
      membership: { members: promoted },
    })
    takeReady(core)
    ack(core, 4, 3)
    expect(core.commitIndex).toBe(2)
    ack(core, 2, 3)
    expect(core.commitIndex).toBe(3)
  })
})

describe("one change at a time (thesis §4.1, §4.3)", () => {
  test("a second change is refused while the first is uncommitted, and allowed once it commits", () => {
    const core = readyLeader()
    expect(core.proposeMembership({ type: "add-learner", id: 4, address: "a:4" })).toMatchObject({ index: 2 })
    expect(core.proposeMembership({ type: "add-learner", id: 5, address: "a:5" })).toEqual({
      refused: { reason: "change-in-progress", index: 2 },
    })
    const rd = core.ready()
    expect(rd.entries.map((e) => e.config?.members.map((m) => m.id))).toEqual([[1, 2, 3, 4]])
    core.advance(rd)
    ack(core, 2, 2)
    expect(core.commitIndex).toBe(2)
    expect(core.proposeMembership({ type: "add-learner", id: 5, address: "a:5" })).toMatchObject({ index: 3 })
  })

  test("a new leader proposes no change before it has committed an entry of its own term", () => {
    const core = newCore(1, [1, 2, 3], opts)
    makeLeader(core)
    expect(core.proposeMembership({ type: "add-learner", id: 4, address: "a:4" })).toEqual({
      refused: { reason: "change-in-progress", index: 1 },
    })
    expect(core.hasReady()).toBe(false)
  })

  test("changes that make no sense are refused with their reason, and nothing enters the log", () => {
    const core = readyLeader()
    expect(core.proposeMembership({ type: "promote", id: 9 })).toEqual({ refused: { reason: "unknown-member", id: 9 } })
    expect(core.proposeMembership({ type: "remove", id: 9 })).toEqual({ refused: { reason: "unknown-member", id: 9 } })
    expect(core.proposeMembership({ type: "add-learner", id: 2, address: "a:2" })).toEqual({
      refused: { reason: "already-member", id: 2, role: "voter" },
    })
    expect(core.proposeMembership({ type: "promote", id: 3 })).toEqual({
      refused: { reason: "already-member", id: 3, role: "voter" },
    })
    const follower = newCore(2, [1, 2, 3], opts)
    expect(follower.proposeMembership({ type: "remove", id: 3 })).toEqual({
      refused: { reason: "not-leader", leaderHint: 0 },
    })
    const single = newCore(1, [1], opts)
    takeReady(makeLeaderOf(single))
    expect(single.proposeMembership({ type: "remove", id: 1 })).toEqual({ refused: { reason: "last-voter", id: 1 } })
    expect(core.lastIndex()).toBe(1)
  })
})

/** A single-node group elects itself; its no-op commits with its own write. */
const makeLeaderOf = (core: RaftCore): RaftCore => {
  for (let t = 0; t < 100 && core.role !== "leader"; t++) core.tick()
  takeReady(core)
  return core
}

describe("removal (thesis §4.2.2)", () => {
  test("a leader that removes itself leads until the change commits, then hands over with TimeoutNow and steps down", () => {
    const core = readyLeader()
    expect(core.proposeMembership({ type: "remove", id: 1 })).toMatchObject({ index: 2 })
    // Still leading, but no longer counting itself: voters 2 and 3 must both hold the entry.
    expect(core.role).toBe("leader")
    expect(core.status().self).toBe("removed")
    takeReady(core)
    expect(core.propose(enc("x"))).toEqual({ index: 3, term: 1 })
    takeReady(core)
    ack(core, 2, 3)
    expect(core.commitIndex).toBe(1)
    ack(core, 3, 2)
    expect(core.commitIndex).toBe(2)
    // Committed: node 2, which holds the whole log, is told to campaign; the leader steps down.
    expect(core.role).toBe("follower")
    const rd = core.ready()
    expect(rd.softState).toEqual({ role: "follower", leader: 0 })
    expect(rd.messages).toEqual([])
    expect(rd.messagesAfterPersist).toEqual([{ type: "TimeoutNow", from: 1, to: 2, term: 1 }])
    expect(rd.committedEntries.map((e) => e.index)).toEqual([2])
    core.advance(rd)
    // Removed: it never campaigns again.
    for (let t = 0; t < 500; t++) core.tick()
    expect(core.role).toBe("follower")
    expect(core.hasReady()).toBe(false)
    expect(core.status().self).toBe("removed")
  })

  test("if no voter holds the whole log, the leader catches one up before it hands over", () => {
    const core = readyLeader()
    core.proposeMembership({ type: "remove", id: 1 })
    takeReady(core)
    core.propose(enc("x"))
    takeReady(core)
    ack(core, 2, 2)
    ack(core, 3, 2)
    expect(core.commitIndex).toBe(2)
    expect(core.role).toBe("leader")
    expect(core.propose(enc("y"))).toEqual({ notLeader: true, leaderHint: 2 })
    expect(messagesOfType(sent(takeReady(core)), "TimeoutNow")).toEqual([])
    ack(core, 2, 3)
    expect(core.role).toBe("follower")
    expect(messagesOfType(sent(core.ready()), "TimeoutNow")).toEqual([{ type: "TimeoutNow", from: 1, to: 2, term: 1 }])
  })

  test("a removed follower keeps receiving the log until it holds the entry that removed it", () => {
    const core = readyLeader()
    core.proposeMembership({ type: "remove", id: 3 })
    const rd = takeReady(core)
    expect(appendsTo(sent(rd), 3).map((m) => m.entries.length)).toEqual([1])
    expect(core.status().progress?.map((p) => [p.id, p.role])).toEqual([
      [2, "voter"],
      [3, "removed"],
    ])
    ack(core, 2, 2)
    expect(core.commitIndex).toBe(2)
    ack(core, 3, 2)
    expect(core.status().progress?.map((p) => p.id)).toEqual([2])
  })

  test("the removed follower learns it from its log and, once the removal commits, stops campaigning", () => {
    const core = newCore(3, [1, 2, 3], opts)
    const removal: Entry = { term: 1, index: 1, data: EMPTY, config: votersMembership([1, 2]) }
    core.step({ type: "Append", from: 1, to: 3, term: 1, prevIndex: 0, prevTerm: 0, entries: [removal], commit: 1 })
    takeReady(core)
    takeReady(core)
    expect(core.status().self).toBe("removed")
    for (let t = 0; t < 500; t++) core.tick()
    expect(core.role).toBe("follower")
    expect(core.hasReady()).toBe(false)
  })

  test("while its removal is uncommitted a removed node may still be needed: it campaigns, by pre-vote, among the new voters", () => {
    // Node 1 led and appended its own removal, then lost leadership: its log alone holds entry 2,
    // so voters 2 and 3, whose logs are behind, could never win without it.
    const restored: RestoredState = {
      hardState: { term: 1, vote: 1, commit: 1 },
      snapshot: undefined,
      entries: [
        { term: 1, index: 1, data: EMPTY },
        { term: 1, index: 2, data: EMPTY, config: votersMembership([2, 3]) },
      ],
    }
    const core = newCore(1, [1, 2, 3], opts, restored)
    expect(core.status().self).toBe("removed")
    for (let t = 0; t < 100 && core.role === "follower"; t++) core.tick()
    expect(core.role).toBe("pre-candidate")
    expect(sent(takeReady(core))).toEqual([
      { type: "PreVote", from: 1, to: 2, term: 2, lastLogIndex: 2, lastLogTerm: 1 },
      { type: "PreVote", from: 1, to: 3, term: 2, lastLogIndex: 2, lastLogTerm: 1 },
    ])
    for (const from of [2, 3]) core.step({ type: "PreVoteResp", from, to: 1, term: 2, reject: false })
    expect(core.role).toBe("candidate")
    takeReady(core)
    for (const from of [2, 3]) core.step({ type: "VoteResp", from, to: 1, term: 2, reject: false })
    expect(core.role).toBe("leader")
    // Elected, it commits the change with the new voters' acks and hands over at once.
    ackAppends(core, sent(takeReady(core)))
    expect(core.role).toBe("follower")
    expect(messagesOfType(sent(core.ready()), "TimeoutNow")).toEqual([{ type: "TimeoutNow", from: 1, to: 2, term: 2 }])
  })
})

describe("the latest configuration in the log rules, committed or not (thesis §4.1)", () => {
  test("a configuration entry cut by a new leader's log is undone with it", () => {
    const core = newCore(2, [1, 2, 3], opts)
    const added: Entry = { term: 1, index: 1, data: EMPTY, config: withLearner([1, 2, 3], 4) }
    core.step({ type: "Append", from: 1, to: 2, term: 1, prevIndex: 0, prevTerm: 0, entries: [added], commit: 0 })
    expect(core.status().membershipIndex).toBe(1)
    expect(core.membership).toEqual(withLearner([1, 2, 3], 4))
    takeReady(core)
    const other: Entry = { term: 2, index: 1, data: enc("z") }
    core.step({ type: "Append", from: 3, to: 2, term: 2, prevIndex: 0, prevTerm: 0, entries: [other], commit: 0 })
    expect(core.membership).toEqual(votersMembership([1, 2, 3]))
    expect(core.status().membershipIndex).toBe(0)
  })

  test("a member hears a leader its log does not name yet, and acknowledges its entries", () => {
    const core = newCore(2, [1, 2, 3], opts)
    core.step({ type: "Append", from: 4, to: 2, term: 3, prevIndex: 0, prevTerm: 0, entries: [], commit: 0 })
    expect(core.leader).toBe(4)
    expect(sent(core.ready())).toEqual([
      { type: "AppendResp", from: 2, to: 4, term: 3, index: 0, reject: false, conflictTerm: 0, conflictIndex: 0 },
    ])
  })

  test("a node joining an existing group waits for the leader's log and becomes a learner from it", () => {
    const core = newCore(4, [], opts)
    expect(core.status().self).toBe("joining")
    for (let t = 0; t < 500; t++) core.tick()
    expect(core.hasReady()).toBe(false)
    const entries = learnerLog().entries
    core.step({ type: "Append", from: 1, to: 4, term: 1, prevIndex: 0, prevTerm: 0, entries, commit: 1 })
    expect(core.status().self).toBe("learner")
    // Committed by the leader's majority: applied with the Ready that writes them.
    expect(takeReady(core).committedEntries).toEqual(entries)
    expect(core.hasReady()).toBe(false)
  })
})

describe("membership survives restarts", () => {
  test("restored from the log: the configuration entries are replayed", () => {
    const disk = new Disk()
    const core = readyLeader(opts, undefined, disk)
    core.proposeMembership({ type: "add-learner", id: 4, address: "127.0.0.1:7004" })
    takeReady(core, disk)
    ack(core, 2, 2)
    takeReady(core, disk)
    const restarted = newCore(1, [1, 2, 3], opts, disk.restored())
    expect(restarted.membership).toEqual(withLearner([1, 2, 3], 4))
    expect(restarted.status().membershipIndex).toBe(2)
    // A restarted learner needs no bootstrap peers: its log says what it is.
    expect(newCore(4, [], opts, disk.restored()).status().self).toBe("learner")
  })

  test("restored from a snapshot: it carries the membership at its index, and a follower installs it", () => {
    const disk = new Disk()
    const core = readyLeader(opts, undefined, disk)
    core.proposeMembership({ type: "add-learner", id: 4, address: "127.0.0.1:7004" })
    takeReady(core, disk)
    ack(core, 2, 2)
    takeReady(core, disk)
    core.compact(2, enc("state@2"))
    const snapshot = core.snapshot()
    expect(snapshot).toEqual({ index: 2, term: 1, data: enc("state@2"), membership: withLearner([1, 2, 3], 4) })
    if (snapshot === undefined) throw new Error("no snapshot")
    disk.saveSnapshot(snapshot)
    expect(disk.entries).toEqual([])
    const restarted = newCore(1, [1, 2, 3], opts, disk.restored())
    expect(restarted.membership).toEqual(withLearner([1, 2, 3], 4))
    expect(restarted.status().membershipIndex).toBe(0)

    // The leader sends it to the learner, whose log was empty: the snapshot makes it a learner.
    core.step({
      type: "AppendResp",
      from: 4,
      to: 1,
      term: 1,
      index: 1,
      reject: true,
      conflictTerm: 0,
      conflictIndex: 1,
    })
    const snaps = messagesOfType(sent(core.ready()), "Snap").filter((m) => m.to === 4)
    expect(snaps.map((m) => m.snapshot)).toEqual([{ index: 2, term: 1, membership: withLearner([1, 2, 3], 4) }])
    const learner = newCore(4, [], opts)
    for (const m of snaps) learner.step(m)
    const rd = takeReady(learner)
    expect(rd.snapshot?.membership).toEqual(withLearner([1, 2, 3], 4))
    expect(sent(rd)).toEqual([
      { type: "AppendResp", from: 4, to: 1, term: 1, index: 2, reject: false, conflictTerm: 0, conflictIndex: 0 },
    ])
    expect(learner.status().self).toBe("learner")
  })
})

describe("a follower behind what the leader recorded for it is brought back, never probed forever", () => {
  test("a follower that lost its log answers the probe below its match: it is sent the log from its end", () => {
    const core = readyLeader()
    for (const s of ["a", "b"]) core.propose(enc(s))
    ackAppends(core, sent(takeReady(core)))
    takeReady(core)
    expect(core.status().progress?.find((p) => p.id === 2)).toMatchObject({ match: 3, state: "replicate" })
    // Follower 2 comes back with an empty data directory under its old id.
    core.propose(enc("c"))
    const append = appendsTo(sent(takeReady(core)), 2)[0]
    expect(append).toMatchObject({ prevIndex: 3 })
    core.step({
      type: "AppendResp",
      from: 2,
      to: 1,
      term: 1,
      index: 3,
      reject: true,
      conflictTerm: 0,
      conflictIndex: 1,
    })
    // That answer may be a stale one; a heartbeat interval without progress makes the leader probe.
    for (let k = 0; k < 2; k++) {
      if (k > 0) core.tick()
      core.step({ type: "HeartbeatResp", from: 2, to: 1, term: 1, context: 0 })
    }
    const probe = appendsTo(sent(takeReady(core)), 2)
    expect(probe.map((m) => m.prevIndex)).toEqual([3])
    core.step({
      type: "AppendResp",
      from: 2,
      to: 1,
      term: 1,
      index: 3,
      reject: true,
      conflictTerm: 0,
      conflictIndex: 1,
    })
    expect(core.status().progress?.find((p) => p.id === 2)).toMatchObject({ match: 0, next: 1, state: "probe" })
    const resend = appendsTo(sent(takeReady(core)), 2)
    expect(resend.map((m) => [m.prevIndex, m.entries.map((e) => e.index)])).toEqual([[0, [1, 2, 3, 4]]])
  })
})
