// Proves that a crash in the middle of a save loses at most that save: the WAL cut at any byte of
// its last records recovers exactly the saves completed before the cut, and keeps working.
import { afterAll, describe, expect, test } from "bun:test"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { basename, join } from "node:path"
import {
  type Entry,
  type HardState,
  openFileStorage,
  type PersistedState,
  StorageCorrupt,
} from "../src/storage/index.ts"
import { dataBytes } from "./support/segmentData.ts"

const seed = Number(process.env.KV_SEED ?? Math.floor(Math.random() * 2 ** 31))
console.log(
  `storage-torn-tail seed ${seed} (replay: KV_SEED=${seed} bun test packages/raft/test/storage-torn-tail.test.ts)`,
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

const root = mkdtempSync(join(tmpdir(), "kv-storage-torn-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let dirCount = 0
const freshDir = () => {
  const dir = join(root, `d${dirCount++}`)
  mkdirSync(dir)
  return dir
}

/** The layout these cases describe: the live segment ends where its last save ends (no zeros written ahead). */
const exact = { preallocateBytes: 0 }

interface History {
  readonly dir: string
  /** The last segment's name and its size after each save (ends[k] = size after save k). */
  readonly segment: string
  readonly ends: number[]
  /** Expected load() after k saves. */
  readonly states: PersistedState[]
}

/** A snapshot, then saves of 1–4 entries with and without hard states, some overwriting a suffix. */
const writeHistory = (random: () => number, saves: number): History => {
  const dir = freshDir()
  const storage = openFileStorage(dir, exact)
  const initial: Entry[] = Array.from({ length: 8 }, (_, k) => ({ term: 1, index: k + 1, data: new Uint8Array([k]) }))
  storage.save({ term: 1, vote: 1, commit: 2 }, initial)
  storage.saveSnapshot({ index: 3, term: 1, data: new Uint8Array([3, 3, 3]) })
  const segment = readdirSync(dir).find((name) => name.startsWith("wal-")) as string
  const size = () => statSync(join(dir, segment)).size
  let hardState: HardState = { term: 1, vote: 1, commit: 2 }
  let log = initial.slice(3)
  const states: PersistedState[] = [storage.load()]
  const ends = [size()]
  for (let k = 0; k < saves; k++) {
    const last = log.at(-1) as Entry
    const start = random() < 0.2 ? Math.max(4, last.index - 1) : last.index + 1
    const term = (random() < 0.3 ? 1 : 0) + (log.find((e) => e.index === start - 1)?.term ?? 1)
    const count = 1 + Math.floor(random() * 4)
    const entries = Array.from({ length: count }, (_, j) => ({
      term,
      index: start + j,
      data: new Uint8Array(Math.floor(random() * 24)).fill(k),
    }))
    const newHardState = random() < 0.5 ? { term, vote: k % 3, commit: start - 1 } : undefined
    storage.save(newHardState, entries)
    log = [...log.filter((e) => e.index < start), ...entries]
    if (newHardState !== undefined) hardState = newHardState
    states.push({ hardState, snapshot: states[0]?.snapshot, entries: log })
    ends.push(size())
  }
  expect(storage.load()).toEqual(states.at(-1) as PersistedState)
  storage.close()
  return { dir, segment, ends, states }
}

const copyWithSegment = (history: History, segmentBytes: Uint8Array): string => {
  const dir = freshDir()
  for (const name of readdirSync(history.dir)) {
    const bytes = name === history.segment ? segmentBytes : readFileSync(join(history.dir, name))
    writeFileSync(join(dir, name), bytes)
  }
  return dir
}

/** Saves completed by the time the file was `length` bytes long. */
const savesWithin = (history: History, length: number): number => history.ends.filter((end) => end <= length).length - 1

describe("torn tail of the last segment", () => {
  test("a WAL cut at every byte of its last saves recovers exactly the saves before the cut", () => {
    const random = rng(seed)
    const saves = 24
    const history = writeHistory(random, saves)
    const full = readFileSync(join(history.dir, history.segment))
    const from = history.ends[saves - 6] as number
    let checked = 0
    for (let cut = from; cut < full.length; cut++) {
      const dir = copyWithSegment(history, full.subarray(0, cut))
      const k = savesWithin(history, cut)
      const storage = openFileStorage(dir, exact)
      const loaded = storage.load()
      expect(loaded).toEqual(history.states[k] as PersistedState)
      // The torn bytes are gone from disk, not just skipped.
      expect(statSync(join(dir, history.segment)).size).toBe(history.ends[k] as number)

      const state = history.states[k] as PersistedState
      const last = state.entries.at(-1)
      const next: Entry = {
        term: (last?.term ?? 1) + 1,
        index: (last?.index ?? 3) + 1,
        data: new Uint8Array([cut & 0xff]),
      }
      storage.save({ term: next.term, vote: 2, commit: 4 }, [next])
      storage.close()
      // The entries handed out at the open read the segment's mapping: the cut and the save after it
      // wrote where the torn bytes were, past every one of them.
      expect(loaded).toEqual(history.states[k] as PersistedState)
      const reopened = openFileStorage(dir, exact)
      expect(reopened.load()).toEqual({
        hardState: { term: next.term, vote: 2, commit: 4 },
        snapshot: state.snapshot,
        entries: [...state.entries, next],
      })
      reopened.close()
      rmSync(dir, { recursive: true })
      checked++
    }
    expect(checked).toBeGreaterThan(100)
  }, 30_000)

  test("zero bytes after the last save (a file extended before its data landed) are dropped", () => {
    const history = writeHistory(rng(seed + 1), 5)
    const full = readFileSync(join(history.dir, history.segment))
    const dir = copyWithSegment(history, new Uint8Array([...full, ...new Uint8Array(4096)]))
    expect(openFileStorage(dir, exact).load()).toEqual(history.states[5] as PersistedState)
    expect(statSync(join(dir, history.segment)).size).toBe(full.length)
  })

  test("a last save whose bytes never reached the disk (zeros) is dropped", () => {
    const history = writeHistory(rng(seed + 2), 5)
    const full = new Uint8Array(readFileSync(join(history.dir, history.segment)))
    full.fill(0, history.ends[4])
    const dir = copyWithSegment(history, full)
    expect(openFileStorage(dir, exact).load()).toEqual(history.states[4] as PersistedState)
  })

  test("an incomplete save in a segment that is not the last is corruption, not a torn tail", () => {
    const dir = freshDir()
    const storage = openFileStorage(dir, { segmentBytes: 64 })
    for (let i = 1; i <= 12; i++) storage.save(undefined, [{ term: 1, index: i, data: new Uint8Array(20) }])
    storage.close()
    const segments = readdirSync(dir).sort()
    expect(segments.length).toBeGreaterThan(2)
    const middle = join(dir, segments[1] as string)
    const bytes = readFileSync(middle)
    writeFileSync(middle, bytes.subarray(0, bytes.length - 5))
    let error: unknown
    try {
      openFileStorage(dir, exact)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(StorageCorrupt)
    expect((error as StorageCorrupt).path).toBe(middle)
  })
})

describe("preallocated segments", () => {
  test("zeros written ahead of the data: a crash cut anywhere in the last saves recovers the saves before it", () => {
    const dir = freshDir()
    const storage = openFileStorage(dir, { preallocateBytes: 4096 })
    const segment = () => join(dir, readdirSync(dir).find((name) => name.startsWith("wal-")) as string)
    const states: PersistedState[] = []
    const ends: number[] = []
    let log: Entry[] = []
    for (let k = 1; k <= 12; k++) {
      const entry = { term: 1, index: k, data: new Uint8Array(10 + k).fill(k) }
      storage.save({ term: 1, vote: 1, commit: k - 1 }, [entry])
      log = [...log, entry]
      states.push(storage.load())
      ends.push(dataBytes(readFileSync(segment())))
    }
    storage.close()
    const full = readFileSync(segment())
    // The file runs ahead of its data: that is the point of preallocation.
    expect(full.length).toBeGreaterThan((ends.at(-1) as number) + 1024)
    let checked = 0
    for (let cut = ends[8] as number; cut <= (ends[11] as number); cut++) {
      const image = new Uint8Array(full.length)
      image.set(full.subarray(0, cut))
      const copy = freshDir()
      writeFileSync(join(copy, basename(segment())), image)
      const saves = ends.filter((end) => end <= cut).length
      const reopened = openFileStorage(copy, { preallocateBytes: 4096 })
      expect(reopened.load()).toEqual(states[saves - 1] as PersistedState)
      const next = { term: 2, index: saves + 1, data: new Uint8Array([cut & 0xff]) }
      reopened.save({ term: 2, vote: 2, commit: saves }, [next])
      reopened.close()
      expect(openFileStorage(copy, { preallocateBytes: 4096 }).load().entries).toEqual([...log.slice(0, saves), next])
      rmSync(copy, { recursive: true })
      checked++
    }
    expect(checked).toBeGreaterThan(50)
  }, 30_000)

  test("a segment that is rotated out is cut to its data, so only the live one ends in zeros", () => {
    const dir = freshDir()
    const storage = openFileStorage(dir, { segmentBytes: 256, preallocateBytes: 256 })
    for (let i = 1; i <= 20; i++) storage.save(undefined, [{ term: 1, index: i, data: new Uint8Array(30).fill(i) }])
    storage.close()
    const segments = readdirSync(dir)
      .filter((name) => name.startsWith("wal-"))
      .sort()
    expect(segments.length).toBeGreaterThan(2)
    for (const name of segments.slice(0, -1)) {
      const bytes = readFileSync(join(dir, name))
      expect(bytes.at(-1)).not.toBe(0)
    }
    expect(readFileSync(join(dir, segments.at(-1) as string)).at(-1)).toBe(0)
    expect(
      openFileStorage(dir)
        .load()
        .entries.map((e) => e.index),
    ).toEqual(Array.from({ length: 20 }, (_, k) => k + 1))
  })
})
