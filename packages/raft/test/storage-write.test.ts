/**
 * Proves the contract of `RaftStorage.write`, the durable write whose wait the caller runs: the
 * batch is there once its effect completes (and after a reopen), nothing else may change the
 * storage before then, a close during the flush leaves the descriptor to the flush, and a memory
 * storage that crashes before its flush lands keeps none of the batch.
 */
import { afterAll, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Deferred, Effect, Fiber } from "effect"
import { type Entry, MemoryDisk, openFileStorage, openMemoryStorage } from "../src/storage/index.ts"

const root = mkdtempSync(join(tmpdir(), "kv-storage-write-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const entries = (from: number, count: number, term = 1): Entry[] =>
  Array.from({ length: count }, (_, k) => ({ term, index: from + k, data: new Uint8Array([from + k, 7, 7]) }))

test("a file storage write is durable once its effect completes, and reads back after a reopen", async () => {
  const dir = join(root, "durable")
  const storage = openFileStorage(dir)
  await Effect.runPromise(storage.write({ term: 1, vote: 2, commit: 0 }, entries(1, 3)))
  await Effect.runPromise(storage.write({ term: 1, vote: 2, commit: 3 }, entries(4, 2)))
  // An entry at an index already stored replaces it and everything after it.
  await Effect.runPromise(storage.write({ term: 2, vote: 0, commit: 3 }, entries(5, 1, 2)))
  expect(storage.raftStateBytes()).toBeGreaterThan(0)
  storage.close()
  const reopened = openFileStorage(dir)
  const state = reopened.load()
  expect(state.hardState).toEqual({ term: 2, vote: 0, commit: 3 })
  expect(state.entries.map((e) => [e.index, e.term, [...e.data]])).toEqual([
    [1, 1, [1, 7, 7]],
    [2, 1, [2, 7, 7]],
    [3, 1, [3, 7, 7]],
    [4, 1, [4, 7, 7]],
    [5, 2, [5, 7, 7]],
  ])
  reopened.close()
})

test("nothing may change a file storage before its previous write is durable", async () => {
  const storage = openFileStorage(join(root, "one-at-a-time"))
  const durable = storage.write({ term: 1, vote: 0, commit: 0 }, entries(1, 1))
  expect(() => storage.save(undefined, entries(2, 1))).toThrow(/before the previous write was durable/)
  expect(() => storage.saveSnapshot({ index: 1, term: 1, data: new Uint8Array(1) })).toThrow(
    /before the previous write was durable/,
  )
  await Effect.runPromise(durable)
  storage.save(undefined, entries(2, 1))
  expect(storage.load().entries.map((e) => e.index)).toEqual([1, 2])
  storage.close()
})

test("closing a file storage during a flush leaves the descriptor to the flush, which completes", async () => {
  const dir = join(root, "close-during-flush")
  const storage = openFileStorage(dir)
  const durable = storage.write({ term: 3, vote: 1, commit: 0 }, entries(1, 2, 3))
  storage.close()
  await Effect.runPromise(durable)
  const reopened = openFileStorage(dir)
  expect(reopened.load().entries.map((e) => e.index)).toEqual([1, 2])
  expect(reopened.load().hardState).toEqual({ term: 3, vote: 1, commit: 0 })
  reopened.close()
})

test("a memory storage write lands only when its flush does: a crash before then keeps none of it", async () => {
  const disk = new MemoryDisk()
  const flush = async (
    crashFirst: boolean,
    hardState: { term: number; vote: number; commit: number },
    batch: Entry[],
  ) => {
    const gate = Effect.runSync(Deferred.make<void>())
    const storage = openMemoryStorage(disk, { flushDelay: Deferred.await(gate) })
    const fiber = Effect.runFork(storage.write(hardState, batch))
    await Bun.sleep(1)
    expect(fiber.pollUnsafe()).toBeUndefined()
    const before = disk.entries.map((e) => e.index)
    // A crash: the server's memory is gone and a restart opens the same disk.
    if (crashFirst) openMemoryStorage(disk).close()
    Effect.runSync(Deferred.succeed(gate, undefined))
    await Bun.sleep(1)
    if (!crashFirst) await Effect.runPromise(Fiber.join(fiber))
    else await Effect.runPromise(Fiber.interrupt(fiber))
    return before
  }
  expect(await flush(false, { term: 1, vote: 1, commit: 0 }, entries(1, 2))).toEqual([])
  expect(disk.entries.map((e) => e.index)).toEqual([1, 2])
  expect(disk.hardState).toEqual({ term: 1, vote: 1, commit: 0 })
  await flush(true, { term: 2, vote: 3, commit: 2 }, entries(3, 2, 2))
  expect(disk.entries.map((e) => e.index)).toEqual([1, 2])
  expect(disk.hardState).toEqual({ term: 1, vote: 1, commit: 0 })
}, 10_000)
