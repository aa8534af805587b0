/** Proves that the log keeps §5.3's rules: matching, conflict truncation, and its durable/committed/applied marks. */
import { describe, expect, test } from "bun:test"
import { type Entry, RaftLog } from "../src/core/index.ts"

const e = (index: number, term: number, bytes = 1): Entry => ({ index, term, data: new Uint8Array(bytes).fill(index) })
const terms = (log: RaftLog): number[] => {
  const out: number[] = []
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.term(i) ?? -1)
  return out
}

describe("RaftLog", () => {
  test("looks terms up by index, with the snapshot boundary as index 0 of the array", () => {
    const log = new RaftLog({ index: 5, term: 2, data: new Uint8Array() }, [e(6, 2), e(7, 3)], 6)
    expect(log.firstIndex()).toBe(6)
    expect(log.lastIndex()).toBe(7)
    expect(log.term(5)).toBe(2)
    expect(log.term(6)).toBe(2)
    expect(log.term(7)).toBe(3)
    expect(log.term(4)).toBeUndefined()
    expect(log.term(8)).toBeUndefined()
    expect(log.entryAt(5)).toBeUndefined()
    expect(log.lastTerm()).toBe(3)
    expect(log.committed).toBe(6)
    expect(log.applied).toBe(5)
    expect(log.stableIndex).toBe(7)
  })

  test("refuses a restored log with a gap or a decreasing term", () => {
    expect(() => new RaftLog(undefined, [e(1, 1), e(3, 1)], 0)).toThrow("not contiguous")
    expect(() => new RaftLog(undefined, [e(1, 2), e(2, 1)], 0)).toThrow("term decreases")
    expect(() => new RaftLog({ index: 3, term: 1, data: new Uint8Array() }, [e(3, 1)], 0)).toThrow("not contiguous")
  })

  test("clamps a restored commit index into [snapshot index, last index]", () => {
    expect(new RaftLog(undefined, [e(1, 1)], 9).committed).toBe(1)
    expect(new RaftLog({ index: 4, term: 1, data: new Uint8Array() }, [], 2).committed).toBe(4)
  })

  test("§5.4.1 up-to-date: a later last term wins, then a longer log", () => {
    const log = new RaftLog(undefined, [e(1, 1), e(2, 2)], 0)
    expect(log.isUpToDate(1, 3)).toBe(true)
    expect(log.isUpToDate(2, 2)).toBe(true)
    expect(log.isUpToDate(5, 2)).toBe(true)
    expect(log.isUpToDate(1, 2)).toBe(false)
    expect(log.isUpToDate(9, 1)).toBe(false)
  })

  test("§5.3 an Append whose entries are already present truncates nothing (it may be old or repeated)", () => {
    const log = new RaftLog(undefined, [e(1, 1), e(2, 1), e(3, 1), e(4, 1)], 0)
    expect(log.maybeAppend(1, 1, [e(2, 1)])).toBe(2)
    expect(log.lastIndex()).toBe(4)
    expect(log.stableIndex).toBe(4)
  })

  test("§5.3 a conflicting entry truncates the log from there and the new entries replace it", () => {
    const log = new RaftLog(undefined, [e(1, 1), e(2, 1), e(3, 1), e(4, 1)], 1)
    expect(log.maybeAppend(1, 1, [e(2, 1), e(3, 2)])).toBe(3)
    expect(terms(log)).toEqual([1, 1, 2])
    // Index 3 is no longer what was persisted: it must be written again.
    expect(log.stableIndex).toBe(2)
    expect(log.unstableEntries().map((x) => x.index)).toEqual([3])
  })

  test("§5.3 a missing or different prevIndex entry is a mismatch", () => {
    const log = new RaftLog(undefined, [e(1, 1), e(2, 1)], 0)
    expect(log.maybeAppend(3, 1, [e(4, 1)])).toBeUndefined()
    expect(log.maybeAppend(2, 2, [e(3, 2)])).toBeUndefined()
    expect(log.lastIndex()).toBe(2)
  })

  test("overwriting a committed entry is a defect", () => {
    const log = new RaftLog(undefined, [e(1, 1), e(2, 1)], 2)
    expect(() => log.maybeAppend(1, 1, [e(2, 2)])).toThrow("conflicts with committed")
  })

  test("conflict hint: the follower's term at prevIndex and the first index it holds of that term", () => {
    const log = new RaftLog(undefined, [e(1, 1), e(2, 2), e(3, 2), e(4, 2), e(5, 3)], 1)
    expect(log.conflictHint(4)).toEqual({ conflictTerm: 2, conflictIndex: 2 })
    expect(log.conflictHint(5)).toEqual({ conflictTerm: 3, conflictIndex: 5 })
    // Shorter log: the hint is just past its end.
    expect(log.conflictHint(9)).toEqual({ conflictTerm: 0, conflictIndex: 6 })
  })

  test("conflict hint never points at or below the commit index", () => {
    const log = new RaftLog(undefined, [e(1, 2), e(2, 2), e(3, 2), e(4, 2)], 2)
    expect(log.conflictHint(4)).toEqual({ conflictTerm: 2, conflictIndex: 3 })
  })

  test("leader side of the back-off: last index at or below a point whose term is at most T", () => {
    const log = new RaftLog(undefined, [e(1, 1), e(2, 1), e(3, 3), e(4, 3), e(5, 5)], 0)
    expect(log.lastIndexWithTermAtMost(1, 5)).toEqual({ index: 2, term: 1 })
    expect(log.lastIndexWithTermAtMost(2, 5)).toEqual({ index: 2, term: 1 })
    expect(log.lastIndexWithTermAtMost(3, 5)).toEqual({ index: 4, term: 3 })
    expect(log.lastIndexWithTermAtMost(3, 3)).toEqual({ index: 3, term: 3 })
    expect(log.lastIndexWithTermAtMost(9, 5)).toEqual({ index: 5, term: 5 })
    expect(log.lastIndexWithTermAtMost(0, 5)).toEqual({ index: 0, term: 0 })
  })

  test("slices are bounded by data bytes but always carry at least one entry", () => {
    const log = new RaftLog(undefined, [e(1, 1, 10), e(2, 1, 10), e(3, 1, 10), e(4, 1, 10)], 0)
    expect(log.slice(1, 5, 25).map((x) => x.index)).toEqual([1, 2])
    expect(log.slice(1, 5, 20).map((x) => x.index)).toEqual([1, 2])
    expect(log.slice(2, 5, 1).map((x) => x.index)).toEqual([2])
    expect(log.slice(1, 5, 1 << 20).map((x) => x.index)).toEqual([1, 2, 3, 4])
    expect(log.slice(5, 9, 100)).toEqual([])
  })

  test("stableTo keeps only the part of a Ready that is still in the log", () => {
    const log = new RaftLog(undefined, [e(1, 1)], 1)
    log.maybeAppend(1, 1, [e(2, 1), e(3, 1), e(4, 1)])
    const persisted = log.unstableEntries()
    expect(persisted.map((x) => x.index)).toEqual([2, 3, 4])
    // Before the Ready is advanced, a new leader replaces index 3 onwards.
    log.maybeAppend(2, 1, [e(3, 2)])
    log.stableTo(persisted)
    expect(log.stableIndex).toBe(2)
    expect(log.unstableEntries().map((x) => [x.index, x.term])).toEqual([[3, 2]])
  })

  test("committed entries are handed out durable here or not, never past the commit or a pending snapshot", () => {
    const log = new RaftLog(undefined, [e(1, 1)], 0)
    log.maybeAppend(1, 1, [e(2, 1), e(3, 1), e(4, 1)])
    log.commitTo(3)
    // Committed means on a majority's disks: entries 2 and 3 go out before this node's write of them.
    expect(log.committedAfter(0, 1 << 20).map((x) => x.index)).toEqual([1, 2, 3])
    expect(log.hasCommittedAfter(3)).toBe(false)
    log.stableTo(log.unstableEntries())
    expect(log.committedAfter(0, 1 << 20).map((x) => x.index)).toEqual([1, 2, 3])
    expect(log.committedAfter(1, 1).map((x) => x.index)).toEqual([2])
    log.restore({ index: 10, term: 2, data: new Uint8Array([7]) })
    expect(log.committedAfter(3, 1 << 20)).toEqual([])
    expect(log.hasCommittedAfter(3)).toBe(false)
  })

  test("restore replaces the log with the snapshot, which is committed and pending persistence", () => {
    const log = new RaftLog(undefined, [e(1, 1), e(2, 1)], 1)
    const snap = { index: 8, term: 3, data: new Uint8Array([1, 2]) }
    log.restore(snap)
    expect(log.firstIndex()).toBe(9)
    expect(log.lastIndex()).toBe(8)
    expect(log.lastTerm()).toBe(3)
    expect(log.committed).toBe(8)
    expect(log.pendingSnapshot).toBe(snap)
    expect(log.snapshot).toBe(snap)
    log.stableSnapTo(8)
    expect(log.pendingSnapshot).toBeUndefined()
  })

  test("compact drops the log up to an applied index and keeps the snapshot to send", () => {
    const log = new RaftLog(undefined, [e(1, 1), e(2, 1), e(3, 2), e(4, 2)], 3)
    log.appliedTo(3)
    log.compact(3, new Uint8Array([9]))
    expect(log.firstIndex()).toBe(4)
    expect(log.term(3)).toBe(2)
    expect(log.term(2)).toBeUndefined()
    expect(log.snapshot).toEqual({ index: 3, term: 2, data: new Uint8Array([9]) })
    // Compacting at or below the boundary again changes nothing.
    log.compact(2, new Uint8Array([1]))
    expect(log.snapshot?.index).toBe(3)
  })
})
