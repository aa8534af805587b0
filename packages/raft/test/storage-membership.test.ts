// Proves that membership survives restarts in both storages: configuration entries come back from
// the WAL as configuration entries (ordinary entries as ordinary ones), snapshots carry the
// membership at their index, a torn configuration record is a torn tail like any other, and files
// written without membership (format 1 snapshots, WALs without configuration records) still open.
import { afterAll, describe, expect, test } from "bun:test"
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createRaft, type Membership, votersMembership } from "../src/core/index.ts"
import {
  type Entry,
  MemoryDisk,
  openFileStorage,
  openMemoryStorage,
  type RaftStorage,
  type Snapshot,
} from "../src/storage/index.ts"
import { baseConfig } from "./support/simCluster.ts"

const root = mkdtempSync(join(tmpdir(), "kv-storage-membership-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let dirCount = 0
const freshDir = () => join(root, `d${dirCount++}`)

const EMPTY = new Uint8Array(0)
const withLearner: Membership = {
  members: [...votersMembership([1, 2, 3]).members, { id: 4, role: "learner", address: "10.0.0.4:7004" }],
}
const entries: Entry[] = [
  { term: 1, index: 1, data: EMPTY },
  { term: 1, index: 2, data: new TextEncoder().encode("put k v") },
  { term: 1, index: 3, data: EMPTY, config: withLearner },
  { term: 2, index: 4, data: new TextEncoder().encode("append k w") },
]

const kinds = [
  ["file", () => openFileStorage(freshDir())],
  ["memory", () => openMemoryStorage(new MemoryDisk())],
] as const

describe.each(kinds)("%s storage", (_, open) => {
  test("a configuration entry reads back as one, every other entry as an ordinary entry", () => {
    const storage = open()
    storage.save({ term: 2, vote: 1, commit: 3 }, entries)
    expect(storage.load().entries).toEqual(entries)
    expect(storage.load().entries.map((e) => "config" in e)).toEqual([false, false, true, false])
    storage.close()
  })

  test("a snapshot keeps the membership at its index", () => {
    const storage = open()
    storage.save({ term: 2, vote: 1, commit: 4 }, entries)
    const snapshot: Snapshot = { index: 3, term: 1, data: new Uint8Array([1, 2, 3]), membership: withLearner }
    storage.saveSnapshot(snapshot)
    expect(storage.load().snapshot).toEqual(snapshot)
    expect(storage.load().entries).toEqual(entries.slice(3))
    storage.close()
  })
})

describe("file storage across reopen", () => {
  test("the membership comes back from the WAL and from the snapshot file, and a restarted core uses it", () => {
    const dir = freshDir()
    const first = openFileStorage(dir)
    first.save({ term: 2, vote: 1, commit: 4 }, entries)
    first.close()
    const fromLog = openFileStorage(dir)
    const state = fromLog.load()
    expect(state.entries).toEqual(entries)
    expect(createRaft(baseConfig(4, []), state).status()).toMatchObject({ self: "learner", membershipIndex: 3 })
    fromLog.saveSnapshot({ index: 4, term: 2, data: new Uint8Array([9]), membership: withLearner })
    fromLog.close()
    const fromSnapshot = openFileStorage(dir)
    const restored = fromSnapshot.load()
    expect(restored.entries).toEqual([])
    expect(restored.snapshot?.membership).toEqual(withLearner)
    expect(createRaft(baseConfig(1, [1, 2, 3]), restored).membership).toEqual(withLearner)
    fromSnapshot.close()
  })

  test("a snapshot without membership is written in format 1, as before, and reads back without one", () => {
    const dir = freshDir()
    const storage = openFileStorage(dir)
    storage.save({ term: 1, vote: 0, commit: 2 }, entries.slice(0, 2))
    storage.saveSnapshot({ index: 2, term: 1, data: new Uint8Array([7]) })
    storage.close()
    const file = readdirSync(dir).find((name) => name.startsWith("snap"))
    if (file === undefined) throw new Error(`no snapshot file in ${readdirSync(dir).join(", ")}`)
    const bytes = readFileSync(join(dir, file))
    expect(new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true)).toBe(1)
    expect(bytes.length).toBe(40 + 1)
    const reopened = openFileStorage(dir)
    expect(reopened.load().snapshot).toEqual({ index: 2, term: 1, data: new Uint8Array([7]) })
    // A core restored from it falls back to its bootstrap peers.
    expect(createRaft(baseConfig(1, [1, 2, 3]), reopened.load()).membership).toEqual(votersMembership([1, 2, 3]))
    reopened.close()
  })

  test("a configuration record torn by a crash is dropped like any torn final write", () => {
    const dir = freshDir()
    const storage: RaftStorage = openFileStorage(dir, { preallocateBytes: 0 })
    storage.save({ term: 1, vote: 0, commit: 2 }, entries.slice(0, 2))
    storage.save(undefined, [entries[2] as Entry])
    storage.close()
    const segment = readdirSync(dir).find((name) => name.startsWith("wal"))
    if (segment === undefined) throw new Error(`no WAL segment in ${readdirSync(dir).join(", ")}`)
    const path = join(dir, segment)
    truncateSync(path, readFileSync(path).length - 5)
    const reopened = openFileStorage(dir)
    expect(reopened.load().entries).toEqual(entries.slice(0, 2))
    reopened.close()
  })
})
