/**
 * A replica killed while a write's fdatasync is still on the thread pool (or not yet started) leaves
 * that batch in the page cache: written, not durable. A restart replays it from there like any
 * other, and then acts on it (acks the entries, keeps the vote). Opening the storage must therefore
 * make what it replayed durable first, or a machine crash after the restart loses entries the
 * leader counted as stored. node:fs is wrapped (support/syncSpy.ts) to see what gets synced.
 */
import { afterAll, expect, test } from "bun:test"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { realFs as real, watchSyncs } from "./support/syncSpy.ts"

const root = real.mkdtempSync(join(tmpdir(), "kv-storage-open-sync-"))
afterAll(() => real.rmSync(root, { recursive: true, force: true }))

test("opening a data directory makes the WAL it replayed durable before anything is acted on", async () => {
  const { openFileStorage } = await import("../src/storage/fileStorage.ts")
  const { segmentFileName } = await import("../src/storage/dataDir.ts")
  const dir = join(root, "replica")
  const first = openFileStorage(dir, { preallocateBytes: 0 })
  first.save({ term: 1, vote: 1, commit: 0 }, [{ term: 1, index: 1, data: new Uint8Array([1]) }])
  // The batch a kill cut short: written, its flush started but (for all a restart can tell) never done.
  const flushing = first.write({ term: 2, vote: 3, commit: 1 }, [{ term: 2, index: 2, data: new Uint8Array([2]) }])
  first.close()

  // No zeros written ahead, so no torn tail to cut (whose truncation syncs the segment anyway).
  let reopened: ReturnType<typeof openFileStorage> | undefined
  const synced = watchSyncs(() => {
    reopened = openFileStorage(dir, { preallocateBytes: 0 })
  })
  if (reopened === undefined) throw new Error("not reopened")
  const state = reopened.load()
  expect(state.entries.map((e) => e.index)).toEqual([1, 2])
  expect(state.hardState).toEqual({ term: 2, vote: 3, commit: 1 })
  const segment = real.realpathSync(join(dir, segmentFileName(1)))
  expect(synced).toContain(segment)
  reopened.close()
  // Let the first storage's flush end before the directory goes.
  const { Effect } = await import("effect")
  await Effect.runPromise(flushing)
})
