/**
 * Proves that opening the shared write-ahead log makes what it replayed durable: a process killed
 * while a flush was pending leaves its replicas' last batches in the page cache, replay reads them,
 * and the restarted replicas act on them (ack, vote), so a machine crash must not take them back.
 * node:fs is wrapped (support/syncSpy.ts) to see what gets synced.
 */
import { afterAll, expect, test } from "bun:test"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { realFs as real, watchSyncs } from "./support/syncSpy.ts"

const root = real.mkdtempSync(join(tmpdir(), "kv-shared-wal-open-sync-"))
afterAll(() => real.rmSync(root, { recursive: true, force: true }))

test("opening the shared log makes the frames it replayed durable before any replica acts on them", async () => {
  const { SharedWal, SHARED_WAL_DIR } = await import("../src/storage/sharedWal.ts")
  const { segmentFileName } = await import("../src/storage/dataDir.ts")
  // The first process's flushes never complete: it is killed while one is pending.
  const first = SharedWal.open(root, { preallocateBytes: 0, flush: () => new Promise<void>(() => {}) })
  const a = first.openReplica("group-100/replica-0")
  const b = first.openReplica("group-101/replica-0")
  a.save({ term: 1, vote: 1, commit: 0 }, [{ term: 1, index: 1, data: new Uint8Array([1]) }])
  a.write({ term: 2, vote: 3, commit: 1 }, [{ term: 2, index: 2, data: new Uint8Array([2]) }])
  b.write({ term: 5, vote: 2, commit: 0 }, [{ term: 5, index: 1, data: new Uint8Array([3]) }])

  // No zeros written ahead, so no torn tail to cut (whose truncation syncs the segment anyway).
  let reopened: ReturnType<typeof SharedWal.open> | undefined
  const synced = watchSyncs(() => {
    reopened = SharedWal.open(root, { preallocateBytes: 0 })
  })
  if (reopened === undefined) throw new Error("not reopened")
  expect(reopened.openReplica("group-100/replica-0").load().hardState).toEqual({ term: 2, vote: 3, commit: 1 })
  expect(
    reopened
      .openReplica("group-101/replica-0")
      .load()
      .entries.map((e) => e.index),
  ).toEqual([1])
  expect(synced).toContain(real.realpathSync(join(root, SHARED_WAL_DIR, segmentFileName(1))))
  reopened.close()
  first.close()
})
