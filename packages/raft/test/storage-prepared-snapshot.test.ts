// Proves that a snapshot file prepared off the event loop (prepareSnapshot) changes nothing stored
// until saveSnapshot renames it into place, that a crash before then recovers the state before the
// snapshot, that saveSnapshot of another snapshot than the prepared one writes its own file, and that
// a snapshot is prepared while a write of the log is in flight (the node hands it over at any time).
import { afterAll, expect, test } from "bun:test"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { type Entry, openFileStorage } from "../src/storage/index.ts"

const root = mkdtempSync(join(tmpdir(), "kv-storage-prepared-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let dirCount = 0
const freshDir = () => join(root, `d${dirCount++}`)
const entry = (index: number): Entry => ({ index, term: 2, data: new Uint8Array([index & 0xff, 9]) })
const data = (n: number) => new Uint8Array(3 << 20).fill(n)
const snapFiles = (dir: string) => readdirSync(dir).filter((name) => name.startsWith("snap-"))

const storageWith40 = (dir: string) => {
  const storage = openFileStorage(dir, { segmentBytes: 200 })
  for (let i = 1; i <= 40; i++) storage.save({ term: 2, vote: 1, commit: i - 1 }, [entry(i)])
  return storage
}

test("a prepared snapshot is stored only by saveSnapshot, which renames it into place", async () => {
  const dir = freshDir()
  const storage = storageWith40(dir)
  await storage.prepareSnapshot!({ index: 30, term: 2, data: data(5) })
  expect(snapFiles(dir)).toEqual(["snap-0000000000000030.snap.prepared.tmp"])
  expect(storage.snapshotBytes()).toBe(0)
  storage.saveSnapshot({ index: 30, term: 2, data: data(5) })
  expect(snapFiles(dir)).toEqual(["snap-0000000000000030.snap"])
  storage.close()
  const state = openFileStorage(dir, { segmentBytes: 200 }).load()
  expect(state.snapshot?.index).toBe(30)
  expect(Buffer.from(state.snapshot!.data).equals(Buffer.from(data(5)))).toBe(true)
  expect(state.entries.map((e) => e.index)).toEqual(Array.from({ length: 10 }, (_, k) => 31 + k))
})

test("a crash after prepareSnapshot recovers the log as it was, without the temporary file", async () => {
  const dir = freshDir()
  const storage = storageWith40(dir)
  await storage.prepareSnapshot!({ index: 30, term: 2, data: data(6) })
  // Crash: the storage is dropped without saveSnapshot.
  storage.close()
  const state = openFileStorage(dir, { segmentBytes: 200 }).load()
  expect(state.snapshot).toBeUndefined()
  expect(state.entries.map((e) => e.index)).toEqual(Array.from({ length: 40 }, (_, k) => 1 + k))
  expect(snapFiles(dir)).toEqual([])
})

test("saveSnapshot of a snapshot other than the prepared one writes its own and drops the prepared file", async () => {
  const dir = freshDir()
  const storage = storageWith40(dir)
  await storage.prepareSnapshot!({ index: 30, term: 2, data: data(7) })
  storage.saveSnapshot({ index: 35, term: 2, data: data(8) })
  expect(snapFiles(dir)).toEqual(["snap-0000000000000035.snap"])
  storage.close()
  const state = openFileStorage(dir, { segmentBytes: 200 }).load()
  expect(state.snapshot?.index).toBe(35)
  expect(state.snapshot!.data[0]).toBe(8)
})

test("a snapshot is prepared while a write of the log is still being made durable", async () => {
  const dir = freshDir()
  const storage = storageWith40(dir)
  const durable = storage.write({ term: 2, vote: 1, commit: 40 }, [entry(41)])
  await storage.prepareSnapshot!({ index: 30, term: 2, data: data(9) })
  expect(snapFiles(dir)).toEqual(["snap-0000000000000030.snap.prepared.tmp"])
  await Effect.runPromise(durable)
  storage.saveSnapshot({ index: 30, term: 2, data: data(9) })
  expect(snapFiles(dir)).toEqual(["snap-0000000000000030.snap"])
  storage.close()
  const state = openFileStorage(dir, { segmentBytes: 200 }).load()
  expect(state.snapshot?.index).toBe(30)
  expect(state.entries.map((e) => e.index)).toEqual(Array.from({ length: 11 }, (_, k) => 31 + k))
})
