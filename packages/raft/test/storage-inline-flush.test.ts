/**
 * Where the file storage's durable write flushes (inlineFlush.ts): a single-entry batch whose writer
 * waits for it (`callerWaits`) on the caller's thread, durable when write() returns, while recent
 * flushes were quick; a larger batch, a batch whose writer does not wait, or any batch after slow
 * flushes, on the thread pool, durable only once its effect completes. A write still on the pool is
 * seen through the storage's own rule: nothing may change it meanwhile.
 */
import { afterAll, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { type Entry, openFileStorage, Storage, type WriteHint } from "../src/storage/index.ts"
import { FlushPlacement } from "../src/storage/inlineFlush.ts"

const root = mkdtempSync(join(tmpdir(), "kv-storage-inline-flush-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const waits: WriteHint = { callerWaits: true }

const entries = (from: number, count: number): Entry[] =>
  Array.from({ length: count }, (_, k) => ({ term: 1, index: from + k, data: new Uint8Array([from + k, 9]) }))

/** A monotonic clock that moves `stepMs` on every reading: each flush seems to take that long. */
const steppingClock = () => {
  const clock = { now: 0, stepMs: 0.1, read: () => (clock.now += clock.stepMs) }
  return clock
}

/** True if the write is still flushing on the pool (then it is awaited); false if it was durable on return. */
const pooled = async (storage: ReturnType<typeof openFileStorage>, write: Effect.Effect<void>): Promise<boolean> => {
  let busy = false
  try {
    // An empty save changes nothing, but is refused while a write is still flushing.
    storage.save(undefined, [])
  } catch (error) {
    busy = /before the previous write was durable/.test(String(error))
  }
  await Effect.runPromise(write)
  return busy
}

test("a single-entry batch is durable when write() returns; a larger one flushes on the pool", async () => {
  const dir = join(root, "by-size")
  const clock = steppingClock()
  const storage = openFileStorage(dir, { monotonicMs: clock.read })
  expect(await pooled(storage, storage.write({ term: 1, vote: 1, commit: 0 }, entries(1, 1), waits))).toBe(false)
  expect(await pooled(storage, storage.write(undefined, entries(2, 2), waits))).toBe(true)
  // A hard state alone (a vote) is a batch of no entries.
  expect(await pooled(storage, storage.write({ term: 2, vote: 3, commit: 0 }, [], waits))).toBe(false)
  expect(await pooled(storage, storage.write(undefined, entries(4, 1), waits))).toBe(false)
  storage.close()
  const reopened = openFileStorage(dir)
  expect(reopened.load().entries.map((e) => e.index)).toEqual([1, 2, 3, 4])
  expect(reopened.load().hardState).toEqual({ term: 2, vote: 3, commit: 0 })
  reopened.close()
})

test("after a slow flush single entries go to the pool, and come back once flushes are quick again", async () => {
  const clock = steppingClock()
  const storage = openFileStorage(join(root, "slow-disk"), { monotonicMs: clock.read })
  let index = 0
  const writeOne = () => storage.write(undefined, entries(++index, 1), waits)
  expect(await pooled(storage, writeOne())).toBe(false)
  // A 20 ms stall: holding the loop through the next one would stop it receiving.
  clock.stepMs = 20
  expect(await pooled(storage, writeOne())).toBe(false)
  clock.stepMs = 0.2
  const placements: boolean[] = []
  for (let k = 0; k < 20; k++) placements.push(await pooled(storage, writeOne()))
  const firstInline = placements.indexOf(false)
  // The average forgets the stall gradually: a few quick flushes on the pool, then inline again.
  expect(firstInline).toBeGreaterThan(3)
  expect(placements.slice(0, firstInline).every((p) => p)).toBe(true)
  expect(placements.slice(firstInline).every((p) => !p)).toBe(true)
  storage.close()
})

test("a writer that does not wait (a leader) has every flush on the pool, however small", async () => {
  const storage = openFileStorage(join(root, "leader"), { monotonicMs: steppingClock().read })
  expect(await pooled(storage, storage.write({ term: 1, vote: 1, commit: 0 }, entries(1, 1)))).toBe(true)
  expect(await pooled(storage, storage.write(undefined, entries(2, 1), { callerWaits: false }))).toBe(true)
  // The same storage, once its writer waits (it became a follower), flushes inline.
  expect(await pooled(storage, storage.write(undefined, entries(3, 1), waits))).toBe(false)
  storage.close()
})

test("inlineFlush: false sends every flush to the pool", async () => {
  const storage = openFileStorage(join(root, "never-inline"), { inlineFlush: false })
  expect(await pooled(storage, storage.write({ term: 1, vote: 0, commit: 0 }, entries(1, 1), waits))).toBe(true)
  expect(await pooled(storage, storage.write(undefined, entries(2, 1), waits))).toBe(true)
  storage.close()
})

test("inline flush limits are checked", () => {
  expect(() => new FlushPlacement({ maxEntries: -1, maxMs: 1 })).toThrow(RangeError)
  expect(() => new FlushPlacement({ maxEntries: 1.5, maxMs: 1 })).toThrow(RangeError)
  expect(() => new FlushPlacement({ maxEntries: 1, maxMs: Number.NaN })).toThrow(RangeError)
  const wider = new FlushPlacement({ maxEntries: 8, maxMs: 5 })
  expect(wider.inline(8)).toBe(true)
  expect(wider.inline(9)).toBe(false)
  wider.flushed(30)
  expect(wider.recentMs).toBe(7.5)
  expect(wider.inline(1)).toBe(false)
})

test("without a clock to time flushes every flush goes to the pool; Storage.layerFile passes the Effect clock", async () => {
  const untimed = openFileStorage(join(root, "untimed"))
  expect(await pooled(untimed, untimed.write({ term: 1, vote: 1, commit: 0 }, entries(1, 1), waits))).toBe(true)
  untimed.close()
  const layered = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const service = yield* Storage
        return yield* service.open("layered")
      }).pipe(Effect.provide(Storage.layerFile(root))),
    ),
  )
  expect(await pooled(layered, layered.write({ term: 1, vote: 1, commit: 0 }, entries(1, 1), waits))).toBe(false)
  layered.close()
})
