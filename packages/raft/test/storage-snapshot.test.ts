// Proves that saveSnapshot compacts the log durably and that a crash at any step of it recovers
// to either the state before the snapshot or the state after it.
import { afterAll, describe, expect, test } from "bun:test"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  type Entry,
  MemoryDisk,
  openFileStorage,
  openMemoryStorage,
  type PersistedState,
  type RaftStorage,
  StorageCorrupt,
} from "../src/storage/index.ts"

const root = mkdtempSync(join(tmpdir(), "kv-storage-snapshot-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let dirCount = 0
const freshDir = () => join(root, `d${dirCount++}`)

const entry = (index: number, term: number): Entry => ({ index, term, data: new Uint8Array([index & 0xff, 7, 7]) })
const entries = (from: number, to: number, term: number): Entry[] =>
  Array.from({ length: to - from + 1 }, (_, k) => entry(from + k, term))
const indexes = (state: PersistedState) => state.entries.map((e) => e.index)

/** Files of a data directory, to rebuild the directory as a crash at some step would leave it. */
type DirImage = Map<string, Uint8Array>
const imageOf = (dir: string): DirImage =>
  new Map(readdirSync(dir).map((name) => [name, new Uint8Array(readFileSync(join(dir, name)))]))
const materialize = (image: DirImage): string => {
  const dir = freshDir()
  mkdirSync(dir, { recursive: true })
  for (const [name, bytes] of image) writeFileSync(join(dir, name), bytes)
  return dir
}
const walFiles = (dir: string) => readdirSync(dir).filter((name) => name.startsWith("wal-"))
const snapFiles = (dir: string) => readdirSync(dir).filter((name) => name.startsWith("snap-"))

describe("saveSnapshot", () => {
  test("reopening after a snapshot loads only later entries; raftStateBytes shrinks; old WAL files are gone", () => {
    const dir = freshDir()
    const storage = openFileStorage(dir, { segmentBytes: 200 })
    for (let i = 1; i <= 40; i++) storage.save({ term: 3, vote: 2, commit: i - 1 }, [entry(i, 3)])
    const segmentsBefore = walFiles(dir)
    expect(segmentsBefore.length).toBeGreaterThan(3)
    const bytesBefore = storage.raftStateBytes()
    storage.saveSnapshot({ index: 30, term: 3, data: new Uint8Array([1, 2, 3, 4]) })
    expect(storage.raftStateBytes()).toBeLessThan(bytesBefore)
    expect(storage.snapshotBytes()).toBe(4)
    expect(walFiles(dir)).toHaveLength(1)
    expect(segmentsBefore).not.toContain(walFiles(dir)[0])
    expect(snapFiles(dir)).toEqual(["snap-0000000000000030.snap"])
    const bytesAfter = storage.raftStateBytes()
    storage.close()

    const reopened = openFileStorage(dir, { segmentBytes: 200 })
    const state = reopened.load()
    expect(state.snapshot).toEqual({ index: 30, term: 3, data: new Uint8Array([1, 2, 3, 4]) })
    expect(indexes(state)).toEqual(Array.from({ length: 10 }, (_, k) => 31 + k))
    expect(state.hardState).toEqual({ term: 3, vote: 2, commit: 39 })
    expect(reopened.raftStateBytes()).toBe(bytesAfter)
    expect(reopened.snapshotBytes()).toBe(4)
    reopened.close()
  })

  for (const kind of ["file", "memory"] as const) {
    const opener = (): (() => RaftStorage) => {
      if (kind === "memory") {
        const disk = new MemoryDisk()
        return () => openMemoryStorage(disk)
      }
      const dir = freshDir()
      return () => openFileStorage(dir)
    }

    test(`${kind}: a snapshot whose term disagrees with the log at its index discards the whole log`, () => {
      const reopen = opener()
      const storage = reopen()
      storage.save({ term: 2, vote: 1, commit: 3 }, [...entries(1, 4, 1), ...entries(5, 8, 2)])
      storage.saveSnapshot({ index: 6, term: 3, data: new Uint8Array([6]) })
      storage.close()
      const state = reopen().load()
      expect(state.snapshot?.index).toBe(6)
      expect(state.entries).toEqual([])
    })

    test(`${kind}: a snapshot past the end of the log discards the whole log`, () => {
      const reopen = opener()
      const storage = reopen()
      storage.save(undefined, entries(1, 4, 1))
      storage.saveSnapshot({ index: 10, term: 2, data: new Uint8Array([10]) })
      storage.save(undefined, [entry(11, 2)])
      storage.close()
      const state = reopen().load()
      expect(state.snapshot?.index).toBe(10)
      expect(indexes(state)).toEqual([11])
    })

    test(`${kind}: a snapshot not newer than the stored one is ignored`, () => {
      const reopen = opener()
      const storage = reopen()
      storage.save(undefined, entries(1, 10, 1))
      storage.saveSnapshot({ index: 6, term: 1, data: new Uint8Array([6]) })
      storage.saveSnapshot({ index: 4, term: 1, data: new Uint8Array([4]) })
      storage.saveSnapshot({ index: 6, term: 1, data: new Uint8Array([0]) })
      storage.close()
      const state = reopen().load()
      expect(state.snapshot).toEqual({ index: 6, term: 1, data: new Uint8Array([6]) })
      expect(indexes(state)).toEqual([7, 8, 9, 10])
    })
  }

  test("only the newest snapshot file is kept", () => {
    const dir = freshDir()
    const storage = openFileStorage(dir)
    storage.save(undefined, entries(1, 10, 1))
    storage.saveSnapshot({ index: 3, term: 1, data: new Uint8Array([3]) })
    storage.saveSnapshot({ index: 8, term: 1, data: new Uint8Array([8]) })
    expect(snapFiles(dir)).toEqual(["snap-0000000000000008.snap"])
    storage.close()
  })
})

describe("a crash during saveSnapshot", () => {
  // The directory before and after saveSnapshot(12): the crash states are built from the two.
  const build = (snapshotTerm: number) => {
    const dir = freshDir()
    const storage = openFileStorage(dir, { segmentBytes: 120 })
    storage.save({ term: 1, vote: 1, commit: 0 }, entries(1, 10, 1))
    storage.saveSnapshot({ index: 5, term: 1, data: new Uint8Array([5]) })
    for (const e of entries(11, 20, 2)) storage.save({ term: 2, vote: 3, commit: 12 }, [e])
    const before = imageOf(dir)
    const expectedBefore = storage.load()
    storage.saveSnapshot({ index: 12, term: snapshotTerm, data: new Uint8Array([12, 12]) })
    const after = imageOf(dir)
    const expectedAfter = storage.load()
    storage.close()
    const newSnapshot = "snap-0000000000000012.snap"
    const newSegment = [...after.keys()].find((name) => name.startsWith("wal-")) as string
    if (before.has(newSegment)) throw new Error("compaction reused a segment name")
    return { before, after, expectedBefore, expectedAfter, newSnapshot, newSegment }
  }

  /** Opens the crash state and checks the recovered state; returns the WAL files right after recovery. */
  const recoversTo = (image: DirImage, expected: PersistedState): string[] => {
    const dir = materialize(image)
    const storage = openFileStorage(dir, { segmentBytes: 120 })
    expect(storage.load()).toEqual(expected)
    expect(readdirSync(dir).filter((name) => name.endsWith(".tmp"))).toEqual([])
    expect(snapFiles(dir)).toHaveLength(expected.snapshot === undefined ? 0 : 1)
    const recoveredWal = walFiles(dir)
    // The recovered storage keeps working and its state survives another reopen.
    const next = (expected.entries.at(-1)?.index ?? expected.snapshot?.index ?? 0) + 1
    storage.save({ term: 4, vote: 0, commit: 0 }, [entry(next, 4)])
    storage.close()
    const again = openFileStorage(dir, { segmentBytes: 120 }).load()
    expect(again.entries).toEqual([...expected.entries, entry(next, 4)])
    expect(again.snapshot).toEqual(expected.snapshot)
    return recoveredWal
  }

  for (const snapshotTerm of [2, 3]) {
    const label = snapshotTerm === 2 ? "agreeing with the log" : "disagreeing with the log"
    const { before, after, expectedBefore, expectedAfter, newSnapshot, newSegment } = build(snapshotTerm)
    const withFiles = (image: DirImage, files: [string, Uint8Array][]): DirImage => new Map([...image, ...files])
    const snapshotBytes = after.get(newSnapshot) as Uint8Array
    const segmentBytes = after.get(newSegment) as Uint8Array

    test(`(${label}) the snapshot file is expected to keep or drop the entries after it`, () => {
      expect(indexes(expectedAfter)).toEqual(snapshotTerm === 2 ? [13, 14, 15, 16, 17, 18, 19, 20] : [])
    })

    test(`(${label}) before the snapshot's rename: the old state, the temporary removed`, () => {
      const image = withFiles(before, [[`${newSnapshot}.tmp`, snapshotBytes.subarray(0, 20)]])
      recoversTo(image, expectedBefore)
    })

    test(`(${label}) after the snapshot's rename, before the new segment: the new state, compaction finished`, () => {
      expect(recoversTo(withFiles(before, [[newSnapshot, snapshotBytes]]), expectedAfter)).toHaveLength(1)
    })

    test(`(${label}) with the new segment still a temporary: the new state`, () => {
      const image = withFiles(before, [
        [newSnapshot, snapshotBytes],
        [`${newSegment}.tmp`, segmentBytes.subarray(0, segmentBytes.length - 3)],
      ])
      recoversTo(image, expectedAfter)
    })

    test(`(${label}) with old and new segments side by side: the new state, old segments removed`, () => {
      const image = withFiles(before, [
        [newSnapshot, snapshotBytes],
        [newSegment, segmentBytes],
      ])
      expect(recoversTo(image, expectedAfter)).toEqual([newSegment])
    })

    test(`(${label}) with only some old segments removed: the new state`, () => {
      const image = withFiles(before, [
        [newSnapshot, snapshotBytes],
        [newSegment, segmentBytes],
      ])
      const oldSegments = [...before.keys()].filter((name) => name.startsWith("wal-")).sort()
      expect(oldSegments.length).toBeGreaterThan(2)
      image.delete(oldSegments[1] as string)
      recoversTo(image, expectedAfter)
    })

    test(`(${label}) before the older snapshot was removed: the new state, older snapshot removed`, () => {
      const image = withFiles(after, [
        ["snap-0000000000000005.snap", before.get("snap-0000000000000005.snap") as Uint8Array],
      ])
      recoversTo(image, expectedAfter)
    })
  }
})

describe("damage around snapshots", () => {
  const setup = () => {
    const dir = freshDir()
    const storage = openFileStorage(dir)
    storage.save({ term: 1, vote: 1, commit: 8 }, entries(1, 10, 1))
    storage.saveSnapshot({ index: 4, term: 1, data: new Uint8Array(100).fill(4) })
    storage.close()
    return { dir, image: imageOf(dir) }
  }

  const expectCorrupt = (dir: string, pathPart: string) => {
    let error: unknown
    try {
      openFileStorage(dir)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(StorageCorrupt)
    expect((error as StorageCorrupt).path).toContain(pathPart)
    return error as StorageCorrupt
  }

  test("a damaged newest snapshot is reported even when an older valid one exists", () => {
    const { image } = setup()
    // An older valid snapshot next to a damaged newer one: the WAL may already be compacted past
    // the older one, so it is never used as a fallback.
    const older = materialize(image)
    const storage = openFileStorage(older)
    storage.saveSnapshot({ index: 8, term: 1, data: new Uint8Array(100).fill(8) })
    storage.close()
    const damaged = imageOf(older)
    damaged.set("snap-0000000000000004.snap", image.get("snap-0000000000000004.snap") as Uint8Array)
    const bytes = new Uint8Array(damaged.get("snap-0000000000000008.snap") as Uint8Array)
    bytes[60] = (bytes[60] as number) ^ 0x01
    damaged.set("snap-0000000000000008.snap", bytes)
    const dir = materialize(damaged)
    const error = expectCorrupt(dir, "snap-0000000000000008.snap")
    expect(error.reason).toContain("checksum")
    expect(error.message).toContain("snap-0000000000000008.snap")
    // Nothing was changed by the failed open.
    expect(imageOf(dir)).toEqual(damaged)
  })

  test("a truncated snapshot is reported", () => {
    const { image } = setup()
    const bytes = image.get("snap-0000000000000004.snap") as Uint8Array
    image.set("snap-0000000000000004.snap", bytes.subarray(0, bytes.length - 1))
    expectCorrupt(materialize(image), "snap-0000000000000004.snap")
  })

  test("a WAL compacted past the newest snapshot is reported", () => {
    const { image } = setup()
    image.delete("snap-0000000000000004.snap")
    const error = expectCorrupt(materialize(image), "wal-")
    expect(error.reason).toContain("compacted through entry 4")
  })

  test("a missing segment in the middle of the WAL is reported", () => {
    const dir = freshDir()
    const storage = openFileStorage(dir, { segmentBytes: 100 })
    for (let i = 1; i <= 20; i++) storage.save(undefined, [entry(i, 1)])
    storage.close()
    const image = imageOf(dir)
    const segments = [...image.keys()].sort()
    expect(segments.length).toBeGreaterThan(3)
    image.delete(segments[1] as string)
    const error = expectCorrupt(materialize(image), segments[1] as string)
    expect(error.reason).toContain("missing")
  })
})
