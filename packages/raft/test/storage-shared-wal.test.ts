/**
 * Proves that replicas sharing one write-ahead log (sharedWal.ts) keep the per-replica storage's
 * contract: writes made while a flush runs wait for the next one and share it; replay gives each
 * replica exactly its own records; a crash cut anywhere in the last flushes loses only batches that
 * were never acknowledged, whole; snapshots stay per replica, and old segments go only when no
 * replica needs them.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { Effect, Exit, Fiber, type Layer } from "effect"
import {
  type Entry,
  type HardState,
  initialHardState,
  type PersistedState,
  type RaftStorage,
  Storage,
  StorageCorrupt,
} from "../src/storage/index.ts"
import { SHARED_WAL_DIR, SharedWal } from "../src/storage/sharedWal.ts"

const seed = seedFromEnv()
console.log(`storage-shared-wal seed ${seed} (replay: KV_SEED=${seed} bun test test/storage-shared-wal.test.ts)`)

const root = mkdtempSync(join(tmpdir(), "kv-shared-wal-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let rootCount = 0
const freshRoot = () => join(root, `r${rootCount++}`)

const names = ["group-100/replica-0", "group-101/replica-0", "group-102/replica-0"] as const

const entries = (from: number, count: number, term = 1, fill = from): Entry[] =>
  Array.from({ length: count }, (_, k) => ({
    term,
    index: from + k,
    data: new Uint8Array(8 + ((from + k) % 5)).fill(fill + k),
  }))

/** A flush the test releases by hand. */
class HeldFlushes {
  readonly started: (() => void)[] = []
  readonly flush = (_fd: number): Promise<void> => new Promise((resolve) => this.started.push(resolve))
  release(k: number): void {
    ;(this.started[k] as () => void)()
  }
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 5))

/** Waits (2 s at most) until `done`: on a loaded machine a fixed pause may end before the log's turns do. */
const until = async (what: string, done: () => boolean) => {
  for (let k = 0; k < 400 && !done(); k++) await settle()
  if (!done()) throw new Error(`not within 2 s: ${what}`)
}

const summary = (state: PersistedState) => ({
  hardState: state.hardState,
  snapshot: state.snapshot === undefined ? undefined : [state.snapshot.index, state.snapshot.term],
  entries: state.entries.map((e) => [e.index, e.term, [...e.data]]),
})

describe("group commit", () => {
  test("writes made while a flush runs wait for the next flush, and share it", async () => {
    const held = new HeldFlushes()
    const wal = SharedWal.open(freshRoot(), { flush: held.flush })
    const [a, b, c] = names.map((name) => wal.openReplica(name)) as [RaftStorage, RaftStorage, RaftStorage]
    const flushesBefore = wal.stats().flushes
    const first = Effect.runFork(a.write({ term: 1, vote: 1, commit: 0 }, entries(1, 2)))
    await settle()
    expect(held.started.length).toBe(1)
    // b and c write while the first flush runs: it started before their bytes existed.
    const second = Effect.runFork(b.write({ term: 1, vote: 2, commit: 0 }, entries(1, 1)))
    const third = Effect.runFork(c.write(undefined, entries(1, 3)))
    await settle()
    expect(first.pollUnsafe()).toBeUndefined()
    expect(held.started.length).toBe(1)
    held.release(0)
    await until("the second flush starts", () => held.started.length === 2)
    expect(first.pollUnsafe()).toEqual(Exit.void)
    expect(second.pollUnsafe()).toBeUndefined()
    expect(third.pollUnsafe()).toBeUndefined()
    expect(held.started.length).toBe(2)
    held.release(1)
    await until("both writes are durable", () => second.pollUnsafe() !== undefined && third.pollUnsafe() !== undefined)
    expect(second.pollUnsafe()).toEqual(Exit.void)
    expect(third.pollUnsafe()).toEqual(Exit.void)
    expect(wal.stats().flushes - flushesBefore).toBe(2)
    wal.close()
  })

  test("the flush after one waits a few turns for the replicas that one released, so their next batches share it", async () => {
    const held = new HeldFlushes()
    const wal = SharedWal.open(freshRoot(), { flush: held.flush })
    const [a, b] = names.map((name) => wal.openReplica(name)) as [RaftStorage, RaftStorage]
    const flushesBefore = wal.stats().flushes
    const first = Effect.runFork(a.write({ term: 1, vote: 1, commit: 0 }, entries(1, 1)))
    await settle()
    // b writes while a's flush runs; a writes its next batch once that flush releases it, as a
    // replica's loop does a few turns after its Ready is durable.
    const fromB = Effect.runFork(b.write({ term: 1, vote: 2, commit: 0 }, entries(1, 1)))
    const nextFromA = Effect.runPromise(Fiber.join(first)).then(
      () => new Promise<void>((resolve) => setImmediate(resolve)),
    )
    held.release(0)
    await nextFromA
    const second = Effect.runFork(a.write(undefined, entries(2, 1)))
    await until("the second flush starts", () => held.started.length === 2)
    held.release(1)
    await until("both writes are durable", () => fromB.pollUnsafe() !== undefined && second.pollUnsafe() !== undefined)
    expect(fromB.pollUnsafe()).toEqual(Exit.void)
    expect(second.pollUnsafe()).toEqual(Exit.void)
    expect(wal.stats().flushes - flushesBefore).toBe(2)
    wal.close()
  })

  test("a flush waits no longer than gatherTurns for a released replica that does not write", async () => {
    const held = new HeldFlushes()
    const wal = SharedWal.open(freshRoot(), { flush: held.flush, gatherTurns: 3 })
    const [a, b] = names.map((name) => wal.openReplica(name)) as [RaftStorage, RaftStorage]
    const first = Effect.runFork(a.write({ term: 1, vote: 1, commit: 0 }, entries(1, 1)))
    await settle()
    const fromB = Effect.runFork(b.write({ term: 1, vote: 2, commit: 0 }, entries(1, 1)))
    held.release(0)
    await Effect.runPromise(Fiber.join(first))
    // Three turns of the event loop at most, then b's flush starts without a.
    for (let turn = 0; turn < 4 && held.started.length < 2; turn++) {
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
    expect(held.started.length).toBe(2)
    held.release(1)
    await Effect.runPromise(Fiber.join(fromB))
    wal.close()
  })

  test("writes of one turn of the event loop share one flush; nothing may change a replica before its write is durable", async () => {
    const held = new HeldFlushes()
    const wal = SharedWal.open(freshRoot(), { flush: held.flush })
    const replicas = names.map((name) => wal.openReplica(name))
    const flushesBefore = wal.stats().flushes
    const fibers = replicas.map((r, k) => Effect.runFork(r.write({ term: 1, vote: k, commit: 0 }, entries(1, 1))))
    await settle()
    expect(held.started.length).toBe(1)
    const a = replicas[0] as RaftStorage
    expect(() => a.save(undefined, entries(2, 1))).toThrow(/before the previous write was durable/)
    held.release(0)
    await Promise.all(fibers.map((f) => Effect.runPromise(Fiber.join(f))))
    expect(wal.stats().flushes - flushesBefore).toBe(1)
    a.save(undefined, entries(2, 1))
    expect(a.load().entries.map((e) => e.index)).toEqual([1, 2])
    wal.close()
  })

  test("closing the log with writes waiting flushes them before it lets go", async () => {
    const held = new HeldFlushes()
    const dir = freshRoot()
    const wal = SharedWal.open(dir, { flush: held.flush })
    const a = wal.openReplica(names[0])
    const b = wal.openReplica(names[1])
    const first = Effect.runFork(a.write({ term: 2, vote: 1, commit: 0 }, entries(1, 1, 2)))
    await settle()
    const second = Effect.runFork(b.write({ term: 2, vote: 1, commit: 0 }, entries(1, 1, 2)))
    wal.close()
    await until("the waiting write is flushed", () => second.pollUnsafe() !== undefined)
    expect(second.pollUnsafe()).toEqual(Exit.void)
    held.release(0)
    await Effect.runPromise(Fiber.join(first))
    const reopened = SharedWal.open(dir)
    expect(
      reopened
        .openReplica(names[1])
        .load()
        .entries.map((e) => e.index),
    ).toEqual([1])
    reopened.close()
  })
})

describe("replay per replica", () => {
  test("each replica gets its own entries and hard state back; later entries replace, the last hard state wins", async () => {
    const dir = freshRoot()
    const wal = SharedWal.open(dir)
    const [a, b, c] = names.map((name) => wal.openReplica(name)) as [RaftStorage, RaftStorage, RaftStorage]
    await Effect.runPromise(
      Effect.all([a.write({ term: 1, vote: 1, commit: 0 }, entries(1, 5)), b.write(undefined, entries(1, 2, 1, 50))], {
        concurrency: "unbounded",
      }),
    )
    // Replaces a's entries 4 and 5 with 4 of term 2.
    await Effect.runPromise(a.write({ term: 2, vote: 3, commit: 3 }, entries(4, 1, 2, 99)))
    await Effect.runPromise(c.write({ term: 7, vote: 0, commit: 0 }, []))
    b.save({ term: 1, vote: 2, commit: 2 }, entries(3, 1, 1, 60))
    const before = [a, b, c].map((storage) => summary(storage.load()))
    wal.close()
    const reopened = SharedWal.open(dir)
    const after = names.map((name) => summary(reopened.openReplica(name).load()))
    expect(after).toEqual(before)
    expect(after[0]?.entries.map((e) => [e[0], e[1]])).toEqual([
      [1, 1],
      [2, 1],
      [3, 1],
      [4, 2],
    ])
    expect(after[0]?.hardState).toEqual({ term: 2, vote: 3, commit: 3 })
    expect(after[1]?.entries.map((e) => e[0])).toEqual([1, 2, 3])
    expect(after[2]).toEqual({ hardState: { term: 7, vote: 0, commit: 0 }, snapshot: undefined, entries: [] })
    reopened.close()
  })

  test("a replica whose directory was removed starts afresh; the others keep their logs", () => {
    const dir = freshRoot()
    const wal = SharedWal.open(dir)
    for (const [k, name] of names.entries())
      wal.openReplica(name).save({ term: 3, vote: k, commit: 0 }, entries(1, 4, 3))
    wal.close()
    rmSync(join(dir, names[1]), { recursive: true })
    const reopened = SharedWal.open(dir)
    expect(reopened.openReplica(names[1]).load()).toEqual({
      hardState: initialHardState,
      snapshot: undefined,
      entries: [],
    })
    expect(reopened.openReplica(names[0]).load().entries.length).toBe(4)
    reopened.close()
    const again = SharedWal.open(dir)
    expect(again.openReplica(names[1]).load().entries).toEqual([])
    expect(again.openReplica(names[2]).load().hardState).toEqual({ term: 3, vote: 2, commit: 0 })
    again.close()
  })

  test("the per-replica storage and the shared log refuse each other's replica directories", async () => {
    const dir = freshRoot()
    const openWith = (layer: Layer.Layer<Storage, StorageCorrupt>, name: string) =>
      Effect.runPromiseExit(
        Effect.scoped(
          Effect.gen(function* () {
            const storage = yield* Storage
            const opened = yield* storage.open(name)
            opened.save({ term: 1, vote: 0, commit: 0 }, [])
            opened.close()
          }).pipe(Effect.provide(layer)),
        ),
      )
    expect(Exit.isSuccess(await openWith(Storage.layerShared(dir), "group-100/replica-0"))).toBe(true)
    expect(Exit.isSuccess(await openWith(Storage.layerFile(dir), "group-101/replica-0"))).toBe(true)
    const perReplica = await openWith(Storage.layerFile(dir), "group-100/replica-0")
    expect(String(perReplica)).toContain("shared write-ahead log")
    const shared = await openWith(Storage.layerShared(dir), "group-101/replica-0")
    expect(String(shared)).toContain("write-ahead log of its own")
  })
})

interface Write {
  readonly name: string
  readonly hardState: HardState | undefined
  readonly entries: Entry[]
}

/** The expected state of every replica after each write of a random history. */
class Model {
  readonly states = new Map<string, { hardState: HardState; entries: Entry[] }>()
  constructor(private readonly maxDataBytes = 40) {
    for (const name of names) this.states.set(name, { hardState: initialHardState, entries: [] })
  }
  next(random: SeededRandom, k: number): Write {
    const name = names[Math.floor(random.next() * names.length)] as string
    const state = this.states.get(name) as { hardState: HardState; entries: Entry[] }
    const last = state.entries.at(-1)
    const start = last !== undefined && random.next() < 0.2 ? Math.max(1, last.index - 1) : (last?.index ?? 0) + 1
    const term = (random.next() < 0.3 ? 1 : 0) + (state.entries.find((e) => e.index === start - 1)?.term ?? 1)
    const count = Math.floor(random.next() * 4)
    const batch = Array.from({ length: count }, (_, j) => ({
      term,
      index: start + j,
      data: new Uint8Array(Math.floor(random.next() * this.maxDataBytes)).fill(k),
    }))
    const hardState = count === 0 || random.next() < 0.5 ? { term, vote: k % 3, commit: start - 1 } : undefined
    return { name, hardState, entries: batch }
  }
  apply(write: Write): void {
    const state = this.states.get(write.name) as { hardState: HardState; entries: Entry[] }
    const start = write.entries[0]?.index
    if (start !== undefined) state.entries = [...state.entries.filter((e) => e.index < start), ...write.entries]
    if (write.hardState !== undefined) state.hardState = write.hardState
  }
  snapshotOf(): Record<string, unknown> {
    return Object.fromEntries(
      [...this.states].map(([name, s]) => [
        name,
        summary({ hardState: s.hardState, snapshot: undefined, entries: s.entries }),
      ]),
    )
  }
}

const loadAll = (dir: string): Record<string, unknown> => {
  const wal = SharedWal.open(dir, { preallocateBytes: 0 })
  try {
    return Object.fromEntries(names.map((name) => [name, summary(wal.openReplica(name).load())]))
  } finally {
    wal.close()
  }
}

const segmentPath = (dir: string): string => {
  const segments = readdirSync(join(dir, SHARED_WAL_DIR)).filter((n) => n.startsWith("wal-"))
  return join(dir, SHARED_WAL_DIR, segments.sort().at(-1) as string)
}

interface HistoryOptions {
  readonly segmentBytes?: number
  readonly maxDataBytes?: number
  /** A fourth replica, with a log but not open while the history is written: it keeps every segment. */
  readonly blocker?: boolean
}

/** Where each write ended: the live segment and its size after it. */
interface WriteEnd {
  readonly path: string
  readonly size: number
}

/** Writes a random history, some writes awaited one by one and some in groups sharing a flush. */
const writeHistory = async (writes: number, options: HistoryOptions = {}) => {
  const random = new SeededRandom(seed)
  const dir = freshRoot()
  const segmentBytes = options.segmentBytes ?? 64 * 1024 * 1024
  if (options.blocker) {
    const first = SharedWal.open(dir, { preallocateBytes: 0, segmentBytes })
    first.openReplica("blocker").save({ term: 4, vote: 4, commit: 0 }, entries(1, 2, 4))
    first.close()
  }
  const wal = SharedWal.open(dir, { preallocateBytes: 0, segmentBytes })
  const storages = new Map<string, RaftStorage>(names.map((name) => [name, wal.openReplica(name)]))
  const model = new Model(options.maxDataBytes)
  const end = (): WriteEnd => {
    const path = segmentPath(dir)
    return { path, size: statSync(path).size }
  }
  const ends = [end()]
  const expected = [model.snapshotOf()]
  let k = 0
  const pending: Fiber.Fiber<void>[] = []
  while (k < writes) {
    // A group of writes by different replicas, all issued before any flush completes.
    const group: Write[] = []
    const busy = new Set<string>()
    const size = 1 + Math.floor(random.next() * 3)
    while (group.length < size && k < writes) {
      const write = model.next(random, k)
      if (busy.has(write.name)) break
      busy.add(write.name)
      group.push(write)
      const effect = (storages.get(write.name) as RaftStorage).write(write.hardState, write.entries)
      model.apply(write)
      ends.push(end())
      expected.push(model.snapshotOf())
      k++
      pending.push(Effect.runFork(effect))
    }
    await Promise.all(pending.splice(0).map((fiber) => Effect.runPromise(Fiber.join(fiber))))
  }
  const segments = wal.stats().segments
  wal.close()
  const path = segmentPath(dir)
  /** Writes whole in a log whose last segment is cut to `cut` bytes (earlier segments are whole). */
  const wholeWithin = (cut: number): number => ends.filter((e) => e.path !== path || e.size <= cut).length - 1
  return { dir, path, ends, expected, segments, wholeWithin }
}

/** Copies the history's data root with its last segment cut to `cut` bytes and loads every replica. */
const loadCut = (history: { dir: string; path: string }, full: Uint8Array, cut: number) => {
  const dir = freshRoot()
  cpSync(history.dir, dir, { recursive: true })
  writeFileSync(segmentPath(dir), full.subarray(0, cut))
  try {
    return loadAll(dir)
  } finally {
    rmSync(dir, { recursive: true })
  }
}

describe("a crash during the last flushes", () => {
  test("the log cut at every byte of its last frames recovers every replica's batches that were whole before the cut", async () => {
    const history = await writeHistory(40)
    const full = readFileSync(history.path)
    expect(loadAll(history.dir)).toEqual(history.expected.at(-1) as Record<string, unknown>)
    const from = (history.ends.at(-8) as WriteEnd).size
    let cuts = 0
    for (let cut = from; cut <= full.length; cut++) {
      const dir = freshRoot()
      cpSync(history.dir, dir, { recursive: true })
      writeFileSync(segmentPath(dir), full.subarray(0, cut))
      const whole = history.wholeWithin(cut)
      expect({ cut, state: loadAll(dir) }).toEqual({ cut, state: history.expected[whole] as Record<string, unknown> })
      // The cut tail is gone for good: writing on continues from the last whole frame.
      if (cut % 97 === 0) {
        const wal = SharedWal.open(dir, { preallocateBytes: 0 })
        wal.openReplica(names[0]).save({ term: 99, vote: 0, commit: 0 }, [])
        wal.close()
        expect(summary(SharedWal.open(dir).openReplica(names[0]).load()).hardState.term).toBe(99)
      }
      rmSync(dir, { recursive: true })
      cuts++
    }
    expect(cuts).toBeGreaterThan(100)
  })

  test("a crash anywhere in a segment that starts with checkpoints recovers the batches whole before it", async () => {
    // The blocker keeps the older segments, so any cut of the last one is a state a crash can leave.
    const history = await writeHistory(70, { segmentBytes: 2048, maxDataBytes: 6, blocker: true })
    expect(history.segments.length).toBeGreaterThanOrEqual(3)
    expect(history.segments[0]).toBe(1)
    const full = readFileSync(history.path)
    // The first frame's flags (after the 20-byte frame header): a checkpoint.
    expect(full[20]).toBe(1)
    for (let cut = 0; cut <= full.length; cut += cut < 800 ? 1 : 7) {
      const state = loadCut(history, full, cut)
      expect({ cut, state }).toEqual({
        cut,
        state: history.expected[history.wholeWithin(cut)] as Record<string, unknown>,
      })
    }
  })

  test("zeros after the last whole frame (space written ahead of the data) are a torn tail", async () => {
    const history = await writeHistory(10)
    const full = readFileSync(history.path)
    const cut = (history.ends.at(-2) as WriteEnd).size + 5
    const dir = freshRoot()
    cpSync(history.dir, dir, { recursive: true })
    writeFileSync(segmentPath(dir), Buffer.concat([full.subarray(0, cut), new Uint8Array(4096)]))
    expect(loadAll(dir)).toEqual(history.expected.at(-2) as Record<string, unknown>)
  })

  test("a bad frame followed by frames of the same flushes is a torn tail; followed by a much later flush it is corruption", async () => {
    const dir = freshRoot()
    const held = new HeldFlushes()
    const wal = SharedWal.open(dir, { preallocateBytes: 0, flush: held.flush })
    const [a, b, c] = names.map((name) => wal.openReplica(name)) as [RaftStorage, RaftStorage, RaftStorage]
    const path = segmentPath(dir)
    a.save({ term: 1, vote: 1, commit: 0 }, entries(1, 2))
    const goodEnd = statSync(path).size
    // Two frames written in one flush: a crash may persist the second and not the first.
    const writes = [b.write(undefined, entries(1, 2)), c.write(undefined, entries(1, 2))]
    await settle()
    held.release(0)
    await Promise.all(writes.map((w) => Effect.runPromise(w)))
    const reordered = freshRoot()
    cpSync(dir, reordered, { recursive: true })
    const bytes = readFileSync(path)
    bytes[goodEnd + 30] = (bytes[goodEnd + 30] as number) ^ 0xff
    writeFileSync(segmentPath(reordered), bytes)
    const recovered = loadAll(reordered)
    expect((recovered[names[0]] as { entries: unknown[] }).entries.length).toBe(2)
    expect((recovered[names[1]] as { entries: unknown[] }).entries).toEqual([])
    expect((recovered[names[2]] as { entries: unknown[] }).entries).toEqual([])

    // Frames of later flushes after the damaged one: it was durable, so this is not a crash's doing.
    for (let k = 0; k < 4; k++) a.save(undefined, entries(3 + k, 1))
    wal.close()
    const damaged = freshRoot()
    cpSync(dir, damaged, { recursive: true })
    const later = readFileSync(path)
    later[goodEnd + 30] = (later[goodEnd + 30] as number) ^ 0xff
    writeFileSync(segmentPath(damaged), later)
    expect(() => SharedWal.open(damaged)).toThrow(StorageCorrupt)
  })
})

describe("segments and snapshots", () => {
  test("segments go once every replica checkpointed past them; snapshots stay per replica", () => {
    const dir = freshRoot()
    const segmentBytes = 8 * 1024
    const wal = SharedWal.open(dir, { segmentBytes, preallocateBytes: 1024 })
    const [a, b, c] = names.map((name) => wal.openReplica(name)) as [RaftStorage, RaftStorage, RaftStorage]
    // c writes a little once and never again; b snapshots now and then; a writes most.
    c.save({ term: 1, vote: 3, commit: 1 }, entries(1, 3))
    let bLast = 0
    for (let k = 1; k <= 600; k++) {
      a.save({ term: 1, vote: 1, commit: k }, [{ term: 1, index: k, data: new Uint8Array(60).fill(k) }])
      if (k % 3 === 0) {
        b.save(undefined, entries(bLast + 1, 1))
        bLast++
      }
      if (k % 10 === 0) a.saveSnapshot({ index: k - 5, term: 1, data: new Uint8Array([k]) })
      if (k % 90 === 0) b.saveSnapshot({ index: bLast - 2, term: 1, data: new Uint8Array([bLast]) })
      expect(wal.stats().segments.length).toBeLessThanOrEqual(2)
    }
    expect(wal.stats().segments[0]).toBeGreaterThan(5)
    expect(readdirSync(join(dir, names[0])).filter((n) => n.startsWith("snap-"))).toEqual([
      `snap-${(595).toString().padStart(16, "0")}.snap`,
    ])
    const before = [a, b, c].map((s) => summary(s.load()))
    wal.close()
    const reopened = SharedWal.open(dir, { segmentBytes })
    expect(names.map((name) => summary(reopened.openReplica(name).load()))).toEqual(before)
    expect(before[0]?.entries.map((e) => e[0])).toEqual([596, 597, 598, 599, 600])
    expect(before[2]?.entries.map((e) => e[0])).toEqual([1, 2, 3])
    reopened.close()
  })

  test("a replica that is not open holds the segments it needs, and finds its log in them later", () => {
    const dir = freshRoot()
    const segmentBytes = 8 * 1024
    const wal = SharedWal.open(dir, { segmentBytes, preallocateBytes: 0 })
    wal.openReplica(names[1]).save({ term: 2, vote: 2, commit: 0 }, entries(1, 2, 2))
    wal.close()
    const next = SharedWal.open(dir, { segmentBytes, preallocateBytes: 0 })
    const a = next.openReplica(names[0])
    for (let k = 1; k <= 300; k++) {
      a.save(undefined, [{ term: 1, index: k, data: new Uint8Array(60) }])
      if (k % 10 === 0) a.saveSnapshot({ index: k, term: 1, data: new Uint8Array(1) })
    }
    const segments = next.stats().segments
    expect(segments[0]).toBe(1)
    expect(segments.length).toBeGreaterThan(2)
    // Once open, it is checkpointed at the next rotation and the old segments go.
    const b = next.openReplica(names[1])
    for (let k = 301; k <= 400; k++) a.save(undefined, [{ term: 1, index: k, data: new Uint8Array(60) }])
    expect(next.stats().segments.length).toBeLessThanOrEqual(2)
    expect(summary(b.load()).entries.map((e) => e[0])).toEqual([1, 2])
    next.close()
    const last = SharedWal.open(dir, { segmentBytes })
    expect(summary(last.openReplica(names[1]).load()).hardState).toEqual({ term: 2, vote: 2, commit: 0 })
    last.close()
    expect(existsSync(join(dir, SHARED_WAL_DIR))).toBe(true)
  })
})
