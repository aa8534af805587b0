import { existsSync } from "node:fs"
import { isAbsolute, join, relative } from "node:path"
import { Clock, Context, Effect, Layer } from "effect"
import { StorageCorrupt } from "./errors.ts"
import { type FileStorageOptions, openFileStorage } from "./fileStorage.ts"
import { MemoryDisk, type MemoryStorageOptions, openMemoryStorage } from "./memoryStorage.ts"
import { MARKER_FILE, SharedWal, type SharedWalOptions } from "./sharedWal.ts"
import type { RaftStorage } from "./types.ts"

/**
 * Opens the durable Raft state of a named server. Swapped between real files and memory disks that
 * survive simulated crashes. Any error other than StorageCorrupt (I/O failure) is a defect.
 */
export class Storage extends Context.Service<
  Storage,
  { open(name: string): Effect.Effect<RaftStorage, StorageCorrupt> }
>()("@kv/raft/Storage") {
  /** `open(name)` uses the data directory `rootDir/name`, with a write-ahead log of its own. */
  static layerFile(rootDir: string, options: FileStorageOptions = {}): Layer.Layer<Storage> {
    return Layer.effect(
      Storage,
      Effect.map(Clock.Clock, (clock) => {
        // Flushes are timed by the injected clock: whether one may run inline depends on the last ones.
        const timed: FileStorageOptions = {
          monotonicMs: () => Number(clock.monotonicTimeNanosUnsafe()) / 1e6,
          ...options,
        }
        return Storage.of({
          open: (name) =>
            Effect.suspend(() => {
              const dir = replicaDir(rootDir, name)
              if (dir === undefined) return notInside(rootDir, name)
              if (existsSync(join(dir, MARKER_FILE))) {
                return Effect.fail(
                  new StorageCorrupt({
                    path: join(dir, MARKER_FILE),
                    offset: 0,
                    reason:
                      "this replica's log is in the shared write-ahead log of its data root; start it with the shared WAL",
                  }),
                )
              }
              return openCatchingCorrupt(() => openFileStorage(dir, timed))
            }),
        })
      }),
    )
  }

  /**
   * Every replica opened through this layer appends to one write-ahead log, `rootDir/shared-wal`,
   * and shares its flushes (sharedWal.ts); `open(name)` keeps the replica's snapshots in
   * `rootDir/name`. The log is replayed when the layer is built and closed with its scope. One
   * process per data root: the caller holds a lock.
   */
  static layerShared(rootDir: string, options: SharedWalOptions = {}): Layer.Layer<Storage, StorageCorrupt> {
    return Layer.effect(
      Storage,
      Effect.acquireRelease(
        openCatchingCorrupt(() => SharedWal.open(rootDir, options)),
        (wal) => Effect.sync(() => wal.close()),
      ).pipe(
        Effect.map((wal) =>
          Storage.of({
            open: (name) =>
              Effect.suspend(() =>
                replicaDir(rootDir, name) === undefined
                  ? notInside(rootDir, name)
                  : openCatchingCorrupt(() => wal.openReplica(name)),
              ),
          }),
        ),
      ),
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

const replicaDir = (rootDir: string, name: string): string | undefined => {
  const dir = join(rootDir, name)
  const inside = relative(rootDir, dir)
  return inside === "" || inside.startsWith("..") || isAbsolute(inside) ? undefined : dir
}

const notInside = (rootDir: string, name: string): Effect.Effect<never> =>
  Effect.die(new RangeError(`storage name ${JSON.stringify(name)} is not inside ${rootDir}`))

const openCatchingCorrupt = <A>(open: () => A): Effect.Effect<A, StorageCorrupt> =>
  Effect.suspend((): Effect.Effect<A, StorageCorrupt> => {
    try {
      return Effect.succeed(open())
    } catch (error) {
      if (error instanceof StorageCorrupt) return Effect.fail(error)
      return Effect.die(error)
    }
  })
