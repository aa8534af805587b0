import { isAbsolute, join, relative } from "node:path"
import { Context, Effect, Layer } from "effect"
import { StorageCorrupt } from "./errors.ts"
import { type FileStorageOptions, openFileStorage } from "./fileStorage.ts"
import { MemoryDisk, type MemoryStorageOptions, openMemoryStorage } from "./memoryStorage.ts"
import type { RaftStorage } from "./types.ts"

/**
 * Opens the durable Raft state of a named server. Swapped between real files and memory disks that
 * survive simulated crashes. Any error other than StorageCorrupt (I/O failure) is a defect.
 */
export class Storage extends Context.Service<
  Storage,
  { open(name: string): Effect.Effect<RaftStorage, StorageCorrupt> }
>()("@kv/raft/Storage") {
  /** `open(name)` uses the data directory `rootDir/name`. */
  static layerFile(rootDir: string, options: FileStorageOptions = {}): Layer.Layer<Storage> {
    return Layer.succeed(Storage)(
      Storage.of({
        open: (name) =>
          Effect.suspend(() => {
            const dir = join(rootDir, name)
            const inside = relative(rootDir, dir)
            if (inside === "" || inside.startsWith("..") || isAbsolute(inside)) {
              return Effect.die(new RangeError(`storage name ${JSON.stringify(name)} is not inside ${rootDir}`))
            }
            return openCatchingCorrupt(() => openFileStorage(dir, options))
          }),
      }),
    )
  }

  /** `open(name)` reuses the disk of that name, so a restarted server finds what it had synced. */
  static layerMemory(
    disks: Map<string, MemoryDisk> = new Map(),
    options: MemoryStorageOptions = {},
  ): Layer.Layer<Storage> {
    return Layer.succeed(Storage)(
      Storage.of({
        open: (name) =>
          Effect.sync(() => {
            let disk = disks.get(name)
            if (disk === undefined) {
              disk = new MemoryDisk()
              disks.set(name, disk)
            }
            return openMemoryStorage(disk, options)
          }),
      }),
    )
  }
}

const openCatchingCorrupt = (open: () => RaftStorage): Effect.Effect<RaftStorage, StorageCorrupt> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(open())
    } catch (error) {
      if (error instanceof StorageCorrupt) return Effect.fail(error)
      return Effect.die(error)
    }
  })
