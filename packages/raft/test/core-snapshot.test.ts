/** Proves log compaction and chunked, resumable InstallSnapshot (§7), asserting the exact chunks and Readies. */
import { describe, expect, test } from "bun:test"
import {
  type Entry,
  type Message,
  type RaftConfig,
  type RaftCore,
  type Snap,
  type Snapshot,
  votersMembership,
} from "../src/core/index.ts"
import { Cluster, enc, makeLeader, messagesOfType, newCore, sent, takeReady } from "./support/simCluster.ts"

const e = (index: number, term: number): Entry => ({ index, term, data: enc(`e${index}`) })
const DATA = Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
const snapshot: Snapshot = { index: 5, term: 1, data: DATA }

/** Node 1 leads term 2 from a snapshot at 5 (term 1) plus entry 6; follower 2 is known to lack everything. */
const leaderNeedingSnapshot = (overrides: Partial<RaftConfig> = {}): RaftCore => {
  const core = newCore(
    1,
    [1, 2, 3],
    { snapshotChunkBytes: 4, snapshotChunksInflight: 2, ...overrides },
    {
      hardState: { term: 1, vote: 0, commit: 6 },
      snapshot,
      entries: [e(6, 1)],
    },
  )
  makeLeader(core)
  core.step({ type: "AppendResp", from: 2, to: 1, term: 2, index: 6, reject: true, conflictTerm: 0, conflictIndex: 1 })
  return core
}

const snap = (to: number, offset: number, bytes: number[], term = 2): Snap => ({
  type: "Snap",
  from: 1,
  to,
  term,
  snapshot: { index: 5, term: 1 },
  offset,
  total: 10,
  chunk: Uint8Array.from(bytes),
  done: offset + bytes.length === 10,
})
const snapResp = (offset: number): Message => ({
  type: "SnapResp",
  from: 2,
  to: 1,
  term: 2,
  snapshot: { index: 5, term: 1 },
  offset,
})
const heartbeatResp: Message = { type: "HeartbeatResp", from: 2, to: 1, term: 2, context: 0 }
const snapsTo2 = (msgs: readonly Message[]) => messagesOfType(msgs, "Snap").filter((m) => m.to === 2)

describe("log compaction", () => {
  test("compact() drops the log up to an applied index and keeps the snapshot to send", () => {
    const c = new Cluster([1])
    c.elect(1)
    for (const s of ["a", "b", "c"]) c.core(1).propose(enc(s))
    c.stabilize()
    const core = c.core(1)
    expect(core.appliedIndex).toBe(4)
    core.compact(3, enc("state@3"))
    expect(core.firstIndex()).toBe(4)
    expect(core.termAt(3)).toBe(1)
    expect(core.entryAt(3)).toBeUndefined()
    // The snapshot carries the membership at its index (here the bootstrap voter).
    expect(core.snapshot()).toEqual({ index: 3, term: 1, data: enc("state@3"), membership: votersMembership([1]) })
    expect(core.status().snapshotIndex).toBe(3)
    expect(() => core.compact(9, enc("x"))).toThrow("beyond applied")
  })
})

describe("§7 InstallSnapshot, leader side", () => {
  test("a follower whose next entry is compacted away gets the snapshot in chunks, a bounded window at a time", () => {
    const core = leaderNeedingSnapshot()
    expect(snapsTo2(sent(core.ready()))).toEqual([snap(2, 0, [0, 1, 2, 3]), snap(2, 4, [4, 5, 6, 7])])
    expect(core.status().progress?.find((p) => p.id === 2)?.state).toBe("snapshot")
  })

  test("each acknowledged offset opens the window for the next chunk", () => {
    const core = leaderNeedingSnapshot()
    takeReady(core)
    core.step(snapResp(4))
    expect(snapsTo2(sent(core.ready()))).toEqual([snap(2, 8, [8, 9])])
  })

  test("a repeated offset (a chunk overtaken or lost) resends from that offset at once, once per stall", () => {
    const core = leaderNeedingSnapshot()
    takeReady(core)
    core.step(snapResp(4))
    expect(snapsTo2(sent(takeReady(core)))).toEqual([snap(2, 8, [8, 9])])
    // Chunk 4..8 never arrived: the follower answers chunk 8 with offset 4 again.
    core.step(snapResp(4))
    expect(snapsTo2(sent(takeReady(core)))).toEqual([snap(2, 4, [4, 5, 6, 7]), snap(2, 8, [8, 9])])
    core.step(snapResp(4))
    expect(snapsTo2(sent(core.ready()))).toEqual([])
  })

  test("when no answer comes at all, a heartbeat interval without progress resends from the acked offset", () => {
    const core = leaderNeedingSnapshot()
    takeReady(core)
    core.step(heartbeatResp)
    expect(snapsTo2(sent(takeReady(core)))).toEqual([])
    // An interval (one tick here) later, still no progress.
    core.tick()
    core.step(heartbeatResp)
    expect(snapsTo2(sent(core.ready()))).toEqual([snap(2, 0, [0, 1, 2, 3]), snap(2, 4, [4, 5, 6, 7])])
  })

  test("a follower that lost its partial copy (restart) says offset 0 and the transfer starts over", () => {
    const core = leaderNeedingSnapshot()
    takeReady(core)
    core.step(snapResp(8))
    takeReady(core)
    core.step(snapResp(0))
    expect(snapsTo2(sent(core.ready()))).toEqual([snap(2, 0, [0, 1, 2, 3]), snap(2, 4, [4, 5, 6, 7])])
  })

  test("once the follower holds the snapshot it is replicated to from snapshot.index + 1", () => {
    const core = leaderNeedingSnapshot()
    takeReady(core)
    core.step({
      type: "AppendResp",
      from: 2,
      to: 1,
      term: 2,
      index: 5,
      reject: false,
      conflictTerm: 0,
      conflictIndex: 0,
    })
    const p = core.status().progress?.find((x) => x.id === 2)
    expect([p?.state, p?.match, p?.next]).toEqual(["replicate", 5, 6])
    const appends = messagesOfType(sent(core.ready()), "Append").filter((m) => m.to === 2)
    expect(appends.map((m) => [m.prevIndex, m.prevTerm, m.entries.map((x) => x.index)])).toEqual([[5, 1, [6, 7]]])
  })

  test("a transfer in progress carries on with its snapshot even if the leader compacts again", () => {
    const c = new Cluster([1, 2, 3], () => ({ snapshotChunkBytes: 2, snapshotChunksInflight: 1 }))
    c.elect(1)
    c.isolate(3)
    for (let i = 0; i < 4; i++) c.core(1).propose(enc(`v${i}`))
    c.stabilize()
    c.core(1).compact(3, enc("state@3"))
    c.heal()
    // Let exactly one chunk through, then the leader takes a newer snapshot.
    let chunks = 0
    for (let i = 0; i < 5 && chunks === 0; i++) {
      c.tickAll()
      c.stabilize((m) => m.type !== "Snap" || ++chunks === 1)
    }
    expect(chunks).toBeGreaterThan(1)
    c.core(1).compact(5, enc("state@5"))
    for (let i = 0; i < 10; i++) {
      c.tickAll()
      c.stabilize()
    }
    // The old transfer finished (resumed after the first chunk); the newer snapshot followed.
    const installed = c.node(3).installedSnapshots
    expect(installed.map((s) => s.index)).toEqual([3, 5])
    expect(c.core(3).lastIndex()).toBe(5)
  })
})

describe("§7 InstallSnapshot, follower side", () => {
  const follower = (): RaftCore => newCore(2, [1, 2, 3])

  test("chunks are acknowledged with the next offset expected; the last one yields Ready.snapshot and the log resets", () => {
    const core = follower()
    core.step(snap(2, 0, [0, 1, 2, 3]))
    core.step(snap(2, 4, [4, 5, 6, 7]))
    expect(sent(takeReady(core))).toEqual([
      { type: "SnapResp", from: 2, to: 1, term: 2, snapshot: { index: 5, term: 1 }, offset: 4 },
      { type: "SnapResp", from: 2, to: 1, term: 2, snapshot: { index: 5, term: 1 }, offset: 8 },
    ])
    core.step(snap(2, 8, [8, 9]))
    const rd = core.ready()
    expect(rd.snapshot).toEqual(snapshot)
    expect(rd.hardState).toEqual({ term: 2, vote: 0, commit: 5 })
    expect(rd.committedEntries).toEqual([])
    // The ack goes out with the Ready, i.e. only after the snapshot is durable.
    expect(sent(rd)).toEqual([
      { type: "AppendResp", from: 2, to: 1, term: 2, index: 5, reject: false, conflictTerm: 0, conflictIndex: 0 },
    ])
    core.advance(rd)
    expect(core.firstIndex()).toBe(6)
    expect(core.lastIndex()).toBe(5)
    expect(core.appliedIndex).toBe(5)
  })

  test("duplicated, early and reordered chunks change nothing; the answer is the offset still expected", () => {
    const core = follower()
    core.step(snap(2, 0, [0, 1, 2, 3]))
    core.step(snap(2, 8, [8, 9]))
    core.step(snap(2, 0, [0, 1, 2, 3]))
    expect(sent(core.ready()).map((m) => (m.type === "SnapResp" ? m.offset : -1))).toEqual([4, 4, 4])
  })

  test("a chunk from the middle of a transfer it knows nothing of (it restarted) asks for offset 0", () => {
    const core = follower()
    core.step(snap(2, 4, [4, 5, 6, 7]))
    expect(sent(core.ready())).toEqual([
      { type: "SnapResp", from: 2, to: 1, term: 2, snapshot: { index: 5, term: 1 }, offset: 0 },
    ])
  })

  test("a snapshot its log already covers is declined with its commit index, and the transfer in progress survives", () => {
    const core = newCore(
      2,
      [1, 2, 3],
      {},
      {
        hardState: { term: 2, vote: 0, commit: 7 },
        snapshot: undefined,
        entries: [1, 2, 3, 4, 5, 6, 7].map((i) => e(i, 1)),
      },
    )
    core.step(snap(2, 0, [0, 1, 2, 3]))
    const rd = core.ready()
    expect(rd.snapshot).toBeUndefined()
    expect(sent(rd)).toEqual([
      { type: "AppendResp", from: 2, to: 1, term: 2, index: 7, reject: false, conflictTerm: 0, conflictIndex: 0 },
    ])
  })

  test("a follower that holds the snapshot's last entry needs no data: it commits through it and says so", () => {
    const core = newCore(
      2,
      [1, 2, 3],
      {},
      {
        hardState: { term: 1, vote: 0, commit: 2 },
        snapshot: undefined,
        entries: [1, 2, 3, 4, 5, 6].map((i) => e(i, 1)),
      },
    )
    core.step(snap(2, 0, [0, 1, 2, 3]))
    expect(core.commitIndex).toBe(5)
    expect(core.lastIndex()).toBe(6)
    expect(sent(core.ready())).toEqual([
      { type: "AppendResp", from: 2, to: 1, term: 2, index: 5, reject: false, conflictTerm: 0, conflictIndex: 0 },
    ])
  })

  test("a late chunk of an older snapshot does not discard the newer transfer in progress", () => {
    const core = follower()
    core.step({ ...snap(2, 0, [0, 1, 2, 3]), snapshot: { index: 9, term: 2 } })
    core.step(snap(2, 0, [0, 1, 2, 3]))
    core.step({ ...snap(2, 4, [4, 5, 6, 7]), snapshot: { index: 9, term: 2 } })
    const offsets = sent(core.ready()).map((m) => (m.type === "SnapResp" ? [m.snapshot.index, m.offset] : []))
    expect(offsets).toEqual([
      [9, 4],
      [9, 8],
    ])
  })
})

test("a follower cut off while the leader compacted catches up through InstallSnapshot, then by Appends", () => {
  const c = new Cluster([1, 2, 3], () => ({ snapshotChunkBytes: 3 }))
  c.elect(1)
  c.isolate(3)
  for (let i = 0; i < 6; i++) c.core(1).propose(enc(`v${i}`))
  c.stabilize()
  c.tickAll()
  c.stabilize()
  c.core(1).compact(5, enc("the state at index 5"))
  c.core(2).compact(4, enc("state@4"))
  c.heal()
  for (let i = 0; i < 5; i++) {
    c.tickAll()
    c.stabilize()
  }
  const n3 = c.node(3)
  expect(n3.installedSnapshots).toEqual([
    { index: 5, term: 1, data: enc("the state at index 5"), membership: votersMembership([1, 2, 3]) },
  ])
  expect(n3.disk.snapshot?.index).toBe(5)
  // Entries after the snapshot arrive as ordinary Appends and are applied after it.
  expect([...n3.applied.keys()]).toEqual([6, 7])
  expect(c.core(3).commitIndex).toBe(7)
})
