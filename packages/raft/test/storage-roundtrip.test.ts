// Proves that the file and memory storages persist exactly what Raft saved: random batches with
// suffix overwrites, hard states, snapshots and reopens end in the same state as a simple model.
import { afterAll, describe, expect, test } from "bun:test"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  type Entry,
  type HardState,
  initialHardState,
  MemoryDisk,
  openFileStorage,
  openMemoryStorage,
  type PersistedState,
  type RaftStorage,
  type Snapshot,
} from "../src/storage/index.ts"

const seed = Number(process.env.KV_SEED ?? Math.floor(Math.random() * 2 ** 31))
console.log(
  `storage-roundtrip seed ${seed} (replay: KV_SEED=${seed} bun test packages/raft/test/storage-roundtrip.test.ts)`,
)

const rng = (s: number) => {
  let state = s >>> 0
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

const root = mkdtempSync(join(tmpdir(), "kv-storage-roundtrip-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let dirCount = 0
const freshDir = () => join(root, `d${dirCount++}`)

/** The semantics of RaftStorage, written as plainly as possible. */
class Model {
  hardState: HardState = initialHardState
  snapshot: Snapshot | undefined
  entries: Entry[] = []

  get base(): number {
    return this.snapshot?.index ?? 0
  }
  get lastIndex(): number {
    return this.base + this.entries.length
  }
  termAt(index: number): number | undefined {
    if (index === this.base) return this.snapshot?.term ?? 0
    return this.entries[index - this.base - 1]?.term
  }
  save(hardState: HardState | undefined, entries: readonly Entry[]): void {
    const first = entries[0]
    if (first !== undefined) this.entries = [...this.entries.slice(0, first.index - this.base - 1), ...entries]
    if (hardState !== undefined) this.hardState = hardState
  }
  saveSnapshot(snapshot: Snapshot): void {
    if (snapshot.index <= this.base) return
    const agrees = snapshot.index <= this.lastIndex && this.termAt(snapshot.index) === snapshot.term
    this.entries = agrees ? this.entries.slice(snapshot.index - this.base) : []
    this.snapshot = snapshot
  }
  state(): PersistedState {
    return { hardState: this.hardState, snapshot: this.snapshot, entries: this.entries }
  }
}

const bytes = (random: () => number, length: number): Uint8Array => {
  const out = new Uint8Array(length)
  for (let k = 0; k < length; k++) out[k] = Math.floor(random() * 256)
  return out
}

/** Mostly small steps, rarely a jump that moves terms into wider msgpack integer encodings. */
const termBump = (random: () => number): number => (random() < 0.02 ? 2 ** 31 : random() < 0.3 ? 1 : 0)

/** Random calls a Raft node could make, valid for the model's current log. */
const nextSave = (random: () => number, model: Model): { hardState: HardState | undefined; entries: Entry[] } => {
  const entries: Entry[] = []
  if (random() < 0.85) {
    const lowest = Math.max(model.base + 1, model.lastIndex - 4)
    let index = lowest + Math.floor(random() * (model.lastIndex + 2 - lowest))
    let term = (model.termAt(index - 1) ?? 0) + (random() < 0.3 ? 1 : 0) || 1
    const count = 1 + Math.floor(random() * 6)
    for (let k = 0; k < count; k++) {
      const size = random() < 0.05 ? 300 + Math.floor(random() * 70_000) : Math.floor(random() * 40)
      entries.push({ term, index, data: bytes(random, size) })
      index += 1
      if (random() < 0.1) term += termBump(random)
    }
  }
  const hardState =
    entries.length === 0 || random() < 0.4
      ? {
          term: model.hardState.term + termBump(random),
          vote: Math.floor(random() * 6),
          commit: Math.floor(random() * (model.lastIndex + 1)),
        }
      : undefined
  return { hardState, entries }
}

const nextSnapshot = (random: () => number, model: Model): Snapshot => {
  const index = model.base + 1 + Math.floor(random() * (model.lastIndex - model.base + 2))
  const logTerm = model.termAt(index)
  const term = logTerm !== undefined && random() < 0.8 ? logTerm : (logTerm ?? 1) + 1
  return { index, term, data: bytes(random, Math.floor(random() * 200)) }
}

const normalize = (state: PersistedState) => ({
  hardState: { ...state.hardState },
  snapshot:
    state.snapshot === undefined
      ? undefined
      : { index: state.snapshot.index, term: state.snapshot.term, data: Array.from(state.snapshot.data) },
  entries: state.entries.map((entry) => ({ term: entry.term, index: entry.index, data: Array.from(entry.data) })),
})

const expectState = (storage: RaftStorage, model: Model): void => {
  expect(normalize(storage.load())).toEqual(normalize(model.state()))
}

describe("file and memory storage against a model", () => {
  test("random saves, overwrites, snapshots and reopens persist exactly the model state", () => {
    const random = rng(seed)
    const dir = freshDir()
    const segmentBytes = 4096
    const disk = new MemoryDisk()
    let file = openFileStorage(dir, { segmentBytes })
    let memory = openMemoryStorage(disk)
    const model = new Model()
    let reopens = 0
    let snapshots = 0
    for (let step = 0; step < 400; step++) {
      const roll = random()
      if (roll < 0.06) {
        const snapshot = nextSnapshot(random, model)
        file.saveSnapshot(snapshot)
        memory.saveSnapshot(snapshot)
        model.saveSnapshot(snapshot)
        snapshots += 1
      } else if (roll < 0.12) {
        // Half the time the old instances are just dropped, as in a crash.
        if (random() < 0.5) {
          file.close()
          memory.close()
        }
        file = openFileStorage(dir, { segmentBytes })
        memory = openMemoryStorage(disk)
        reopens += 1
        expectState(file, model)
        expectState(memory, model)
      } else {
        const { hardState, entries } = nextSave(random, model)
        file.save(hardState, entries)
        memory.save(hardState, entries)
        model.save(hardState, entries)
      }
      expect(file.raftStateBytes()).toBe(memory.raftStateBytes())
      expect(file.snapshotBytes()).toBe(model.snapshot?.data.length ?? 0)
      expect(memory.snapshotBytes()).toBe(model.snapshot?.data.length ?? 0)
    }
    expectState(file, model)
    expectState(memory, model)
    file.close()
    file = openFileStorage(dir, { segmentBytes })
    expectState(file, model)
    expect(file.raftStateBytes()).toBe(memory.raftStateBytes())
    file.close()
    expect(reopens).toBeGreaterThan(5)
    expect(snapshots).toBeGreaterThan(5)
  })

  for (const kind of ["file", "memory"] as const) {
    const open = (): (() => RaftStorage) => {
      if (kind === "file") {
        const dir = freshDir()
        return () => openFileStorage(dir, { segmentBytes: 512 })
      }
      const disk = new MemoryDisk()
      return () => openMemoryStorage(disk)
    }

    test(`${kind}: an entry at index i replaces every stored entry >= i`, () => {
      const reopen = open()
      const storage = reopen()
      const e = (index: number, term: number) => ({ index, term, data: new Uint8Array([index, term]) })
      storage.save({ term: 1, vote: 1, commit: 0 }, [e(1, 1), e(2, 1), e(3, 1), e(4, 1)])
      storage.save(undefined, [e(3, 2)])
      storage.close()
      const state = reopen().load()
      expect(state.entries.map((entry) => [entry.index, entry.term])).toEqual([
        [1, 1],
        [2, 1],
        [3, 2],
      ])
      expect(state.hardState).toEqual({ term: 1, vote: 1, commit: 0 })
    })

    test(`${kind}: a fresh storage loads an empty state`, () => {
      const storage = open()()
      expect(storage.load()).toEqual({ hardState: initialHardState, snapshot: undefined, entries: [] })
    })

    test(`${kind}: calls that break the log's shape are rejected and change nothing`, () => {
      const reopen = open()
      const storage = reopen()
      const e = (index: number, term: number) => ({ index, term, data: new Uint8Array() })
      storage.save(undefined, [e(1, 2), e(2, 2)])
      expect(() => storage.save(undefined, [e(4, 2)])).toThrow(RangeError)
      expect(() => storage.save(undefined, [e(3, 2), e(5, 2)])).toThrow(RangeError)
      expect(() => storage.save(undefined, [e(3, 1)])).toThrow(RangeError)
      expect(() => storage.save({ term: -1, vote: 0, commit: 0 }, [])).toThrow(RangeError)
      storage.saveSnapshot({ index: 1, term: 2, data: new Uint8Array([9]) })
      expect(() => storage.save(undefined, [e(1, 2)])).toThrow(RangeError)
      storage.save(undefined, [e(3, 3)])
      storage.close()
      const state = reopen().load()
      expect(state.snapshot?.index).toBe(1)
      expect(state.entries.map((entry) => entry.index)).toEqual([2, 3])
    })

    test(`${kind}: a closed storage refuses further calls`, () => {
      const storage = open()()
      storage.close()
      expect(() => storage.save({ term: 1, vote: 0, commit: 0 }, [])).toThrow()
    })
  }

  test("memory: a storage opened before a restart can no longer write to the disk", () => {
    const disk = new MemoryDisk()
    const crashed = openMemoryStorage(disk)
    const restarted = openMemoryStorage(disk)
    expect(() => crashed.save({ term: 5, vote: 1, commit: 0 }, [])).toThrow()
    expect(restarted.load().hardState).toEqual(initialHardState)
  })

  test("file: segments rotate at segmentBytes and a reopen appends after the last one", () => {
    const dir = freshDir()
    let storage = openFileStorage(dir, { segmentBytes: 256 })
    const entries = Array.from({ length: 60 }, (_, k) => ({ term: 1, index: k + 1, data: new Uint8Array(20).fill(k) }))
    for (const entry of entries) storage.save(undefined, [entry])
    const segments = readdirSync(dir).filter((name) => name.startsWith("wal-"))
    expect(segments.length).toBeGreaterThan(4)
    storage.close()
    storage = openFileStorage(dir, { segmentBytes: 256 })
    storage.save({ term: 2, vote: 3, commit: 60 }, [{ term: 2, index: 61, data: new Uint8Array([1]) }])
    storage.close()
    const state = openFileStorage(dir, { segmentBytes: 256 }).load()
    expect(state.entries.length).toBe(61)
    expect(state.entries[59]?.data).toEqual(new Uint8Array(20).fill(59))
    expect(state.hardState).toEqual({ term: 2, vote: 3, commit: 60 })
  })
})
