// Proves that the Storage service opens named servers' state from files or from memory disks that
// survive a restart, and reports damage as a typed StorageCorrupt failure.
import { afterAll, describe, expect, test } from "bun:test"
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Cause, Effect, Exit, type Layer } from "effect"
import { type MemoryDisk, Storage, StorageCorrupt } from "../src/storage/index.ts"

const root = mkdtempSync(join(tmpdir(), "kv-storage-service-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const entry = (index: number) => ({ term: 1, index, data: new Uint8Array([index]) })

/** Saves through one open, "restarts" by opening the same name again, and loads. */
const saveRestartLoad = Effect.gen(function* () {
  const storage = yield* Storage
  const first = yield* storage.open("server-1")
  first.save({ term: 4, vote: 2, commit: 1 }, [entry(1), entry(2)])
  const other = yield* storage.open("server-2")
  other.save({ term: 9, vote: 9, commit: 0 }, [])
  const restarted = yield* storage.open("server-1")
  return restarted.load()
})

const openNamed = (name: string) =>
  Effect.gen(function* () {
    const storage = yield* Storage
    return yield* storage.open(name)
  })

const run = <A, E>(effect: Effect.Effect<A, E, Storage>, layer: Layer.Layer<Storage>) =>
  Effect.runSync(Effect.provide(effect, layer))

describe("Storage service", () => {
  test("layerMemory: a reopened name finds what it saved; other names are separate disks", () => {
    const disks = new Map<string, MemoryDisk>()
    const state = run(saveRestartLoad, Storage.layerMemory(disks))
    expect(state.hardState).toEqual({ term: 4, vote: 2, commit: 1 })
    expect(state.entries).toEqual([entry(1), entry(2)])
    expect([...disks.keys()].sort()).toEqual(["server-1", "server-2"])
    expect(disks.get("server-2")?.hardState).toEqual({ term: 9, vote: 9, commit: 0 })
  })

  test("layerFile: each name is a data directory under the root", () => {
    const dir = join(root, "files")
    const state = run(saveRestartLoad, Storage.layerFile(dir))
    expect(state.hardState).toEqual({ term: 4, vote: 2, commit: 1 })
    expect(state.entries).toEqual([entry(1), entry(2)])
    expect(readdirSync(dir).sort()).toEqual(["server-1", "server-2"])
  })

  test("layerFile: a damaged directory fails open with StorageCorrupt", () => {
    const dir = join(root, "damaged")
    run(
      Effect.gen(function* () {
        const storage = yield* (yield* Storage).open("s")
        storage.save({ term: 1, vote: 1, commit: 0 }, [entry(1)])
        storage.close()
      }),
      Storage.layerFile(dir),
    )
    writeFileSync(join(dir, "s", "snap-0000000000000001.snap"), new Uint8Array(10))
    const error = run(Effect.flip(openNamed("s")), Storage.layerFile(dir))
    expect(error).toBeInstanceOf(StorageCorrupt)
    expect(error._tag).toBe("StorageCorrupt")
    expect(error.path).toBe(join(dir, "s", "snap-0000000000000001.snap"))
  })

  test("layerFile: a name that leaves the root is a defect, not a directory", () => {
    const exit = Effect.runSyncExit(Effect.provide(openNamed("../escape"), Storage.layerFile(join(root, "inside"))))
    expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
    expect(readdirSync(root)).not.toContain("escape")
  })
})
