/**
 * Proves that the core believes only what an honest peer can send (core/bounds.ts): forged terms,
 * indexes, commit indexes, second leaders and snapshot sizes change nothing, and a replica stays
 * able to elect, persist and restart after anything it accepted.
 */
import { describe, expect, test } from "bun:test"
import {
  type Append,
  createRaft,
  type Heartbeat,
  MAX_TERM_AHEAD,
  MAX_TERM_OR_INDEX,
  type Message,
  type RaftCore,
  SnapshotReceiver,
} from "../src/core/index.ts"
import {
  baseConfig,
  Disk,
  emptyState,
  firstAppend,
  makeLeader,
  newCore,
  sent,
  takeReady,
  tickUntil,
} from "./support/simCluster.ts"

const data = (n: number) => new Uint8Array([n])

/** A follower of leader 1 in term 1 holding entries 1..3 (1 committed). */
const follower = (overrides = {}): { core: RaftCore; disk: Disk } => {
  const disk = new Disk()
  const core = newCore(2, [1, 2, 3], overrides)
  core.step(
    firstAppend(
      [1, 2, 3].map((index) => ({ term: 1, index, data: data(index) })),
      1,
    ),
  )
  while (core.hasReady()) takeReady(core, disk)
  return { core, disk }
}

const heartbeat = (term: number, commit = 0, from = 1): Heartbeat => ({
  type: "Heartbeat",
  from,
  to: 2,
  term,
  commit,
  context: 0,
})

describe("terms beyond bounds", () => {
  test.each([
    ["2^53 - 1", 2 ** 53 - 1],
    ["2^48 + 1", MAX_TERM_OR_INDEX + 1],
    ["2^48", MAX_TERM_OR_INDEX],
    ["term + 10^9", 1 + 1e9],
    ["term + MAX_TERM_AHEAD + 1", 1 + MAX_TERM_AHEAD + 1],
  ])("a member's heartbeat with term %s changes nothing and elections go on", (_, term) => {
    const { core, disk } = follower()
    core.step(heartbeat(term))
    expect(core.term).toBe(1)
    expect(core.hasReady()).toBe(false)
    expect(disk.hardState.term).toBe(1)
    // The next election is for term 2, as if the forgery never came.
    tickUntil(core, () => core.role !== "follower")
    const rd = takeReady(core, disk)
    expect(sent(rd).map((m) => m.term)).toEqual([2, 2])
  })

  test("a term exactly MAX_TERM_AHEAD above ours is a real peer's and is taken", () => {
    const { core } = follower()
    core.step(heartbeat(1 + MAX_TERM_AHEAD))
    expect(core.term).toBe(1 + MAX_TERM_AHEAD)
    expect(core.leader).toBe(1)
  })

  test("vote requests and votes with forged terms do not move term or vote", () => {
    const { core, disk } = follower()
    const forged: Message[] = [
      { type: "Vote", from: 3, to: 2, term: 2 ** 53 - 1, lastLogIndex: 99, lastLogTerm: 1, transfer: true },
      { type: "PreVote", from: 3, to: 2, term: 1e12, lastLogIndex: 99, lastLogTerm: 1 },
      // A candidate's last log term can never exceed its term.
      { type: "Vote", from: 3, to: 2, term: 2, lastLogIndex: 99, lastLogTerm: 3, transfer: true },
      { type: "VoteResp", from: 3, to: 2, term: MAX_TERM_OR_INDEX + 7, reject: false },
    ]
    for (const m of forged) core.step(m)
    expect(core.hasReady()).toBe(false)
    expect(core.hardState()).toEqual({ term: 1, vote: 0, commit: 1 })
    expect(disk.hardState.term).toBe(1)
  })

  test("a replica at the largest term a message may carry still campaigns, persists and restarts", () => {
    const disk = new Disk()
    disk.hardState = { term: MAX_TERM_OR_INDEX, vote: 0, commit: 0 }
    const core = createRaft(baseConfig(1, [1, 2, 3]), disk.restored())
    tickUntil(core, () => core.role === "candidate")
    const rd = takeReady(core, disk)
    expect(rd.hardState).toEqual({ term: MAX_TERM_OR_INDEX + 1, vote: 1, commit: 0 })
    expect(Number.isSafeInteger(rd.hardState!.term + 1)).toBe(true)
    const restarted = createRaft(baseConfig(1, [1, 2, 3]), disk.restored())
    expect(restarted.term).toBe(MAX_TERM_OR_INDEX + 1)
  })
})

describe("indexes and commit indexes beyond what a message vouches for", () => {
  test("an Append claiming a commit far ahead commits only the entries it carries", () => {
    const { core } = follower()
    core.step({
      type: "Append",
      from: 1,
      to: 2,
      term: 1,
      prevIndex: 1,
      prevTerm: 1,
      entries: [{ term: 1, index: 2, data: data(2) }],
      commit: MAX_TERM_OR_INDEX,
    })
    // Entry 3 is in our log but this message does not vouch for it.
    expect(core.commitIndex).toBe(2)
  })

  test("a heartbeat claiming a commit far ahead never commits past our log, and nothing throws", () => {
    const { core, disk } = follower()
    core.step(heartbeat(1, MAX_TERM_OR_INDEX))
    expect(core.commitIndex).toBe(3)
    const rd = takeReady(core, disk)
    expect(rd.committedEntries.map((e) => e.index)).toEqual([2, 3])
  })

  test("indexes above 2^48 are dropped before they reach the log", () => {
    const { core } = follower()
    const forged: Message[] = [
      { ...heartbeat(1), commit: MAX_TERM_OR_INDEX + 1 },
      {
        type: "Append",
        from: 1,
        to: 2,
        term: 1,
        prevIndex: MAX_TERM_OR_INDEX,
        prevTerm: 1,
        entries: [{ term: 1, index: MAX_TERM_OR_INDEX + 1, data: data(1) }],
        commit: 0,
      },
    ]
    for (const m of forged) core.step(m)
    expect(core.hasReady()).toBe(false)
    expect(core.lastIndex()).toBe(3)
  })

  test("once this term's leader is known, a leader's message from another member is ignored", () => {
    const { core } = follower()
    const forged: Append = {
      type: "Append",
      from: 3,
      to: 2,
      term: 1,
      prevIndex: 1,
      prevTerm: 1,
      entries: [{ term: 1, index: 2, data: data(99) }],
      commit: 2,
    }
    core.step(forged)
    core.step(heartbeat(1, 3, 3))
    expect(core.leader).toBe(1)
    expect(core.hasReady()).toBe(false)
    expect(core.entryAt(2)?.data).toEqual(data(2))
    expect(core.commitIndex).toBe(1)
  })
})

describe("entry and snapshot sizes", () => {
  test("an Append carrying an entry larger than maxEntryBytes is dropped", () => {
    const { core } = follower({ maxEntryBytes: 100 })
    core.step({
      type: "Append",
      from: 1,
      to: 2,
      term: 1,
      prevIndex: 3,
      prevTerm: 1,
      entries: [{ term: 1, index: 4, data: new Uint8Array(101) }],
      commit: 1,
    })
    expect(core.hasReady()).toBe(false)
    expect(core.lastIndex()).toBe(3)
  })

  test("propose() past maxEntryBytes is a caller's defect; at the limit it is taken", () => {
    const core = newCore(1, [1, 2, 3], { maxEntryBytes: 100 })
    makeLeader(core)
    expect(() => core.propose(new Uint8Array(101))).toThrow("maxEntryBytes")
    expect(core.propose(new Uint8Array(100))).toEqual({ index: 2, term: 1 })
  })

  test("a first snapshot chunk claiming a terabyte allocates only what arrives", () => {
    const { core } = follower({ maxSnapshotBytes: 2 ** 40 })
    core.step({
      type: "Snap",
      from: 1,
      to: 2,
      term: 1,
      snapshot: { index: 1000, term: 1 },
      offset: 0,
      total: 2 ** 40,
      chunk: new Uint8Array(1024),
      done: false,
    })
    const rd = core.ready()
    expect(sent(rd)).toEqual([
      { type: "SnapResp", from: 2, to: 1, term: 1, snapshot: { index: 1000, term: 1 }, offset: 1024 },
    ])
  })

  test("the receiver's buffer grows with the bytes received, and the snapshot comes out whole", () => {
    const receiver = new SnapshotReceiver(1 << 30)
    const total = 300_000
    const bytes = new Uint8Array(total).map((_, k) => k % 251)
    const chunk = 32 * 1024
    const snap = (offset: number) =>
      ({
        type: "Snap",
        from: 1,
        to: 2,
        term: 1,
        snapshot: { index: 10, term: 1 },
        offset,
        total,
        chunk: bytes.subarray(offset, Math.min(total, offset + chunk)),
        done: offset + chunk >= total,
      }) as const
    expect(receiver.receive({ ...snap(0), total: 1 << 30 })).toBe(chunk)
    expect(receiver.bufferedBytes()).toBe(64 * 1024)
    let out = receiver.receive(snap(0))
    for (let offset = chunk; typeof out === "number"; offset += chunk) {
      expect(receiver.bufferedBytes()).toBeLessThanOrEqual(2 * offset)
      out = receiver.receive(snap(offset))
    }
    expect(out?.data).toEqual(bytes)
    expect(receiver.bufferedBytes()).toBe(0)
  })

  test("a leader does not send a snapshot past maxSnapshotBytes, and says so in status", () => {
    const disk = new Disk()
    const leader = newCore(1, [1, 2, 3], { maxSnapshotBytes: 100 })
    makeLeader(leader, disk)
    for (const n of [1, 2, 3]) leader.propose(data(n))
    let rd = takeReady(leader, disk)
    // Follower 2 acknowledges everything; commit, apply, then compact into a large snapshot.
    leader.step({
      type: "AppendResp",
      from: 2,
      to: 1,
      term: 1,
      index: 4,
      reject: false,
      conflictTerm: 0,
      conflictIndex: 0,
    })
    rd = takeReady(leader, disk)
    expect(rd.committedEntries.at(-1)?.index).toBe(4)
    leader.compact(4, new Uint8Array(101))
    expect(leader.status().oversizedSnapshotBytes).toBe(0)
    // Follower 3 never answered the first Append; now it does, and it needs what was compacted.
    leader.step({ type: "HeartbeatResp", from: 3, to: 1, term: 1, context: 0 })
    rd = takeReady(leader, disk)
    expect(sent(rd).filter((m) => m.type === "Snap")).toEqual([])
    expect(leader.status().oversizedSnapshotBytes).toBe(101)
    expect(leader.status().progress?.find((p) => p.id === 3)?.state).toBe("probe")
  })
})

test("an empty follower steps a forged snapshot-sized claim without growing its term", () => {
  const core = newCore(2, [1, 2, 3], {}, emptyState())
  core.step({
    type: "Snap",
    from: 1,
    to: 2,
    term: 2 ** 53 - 1,
    snapshot: { index: 5, term: 1 },
    offset: 0,
    total: 10,
    chunk: new Uint8Array(10),
    done: true,
  })
  expect(core.term).toBe(0)
  expect(core.hasReady()).toBe(false)
})
