import { MemoryDisk, type MemoryStorageOptions, openMemoryStorage, type RaftStorage, Storage } from "@kv/raft"
import { Effect, Layer } from "effect"

/** A crash armed for a server's next durable write. */
export interface SaveCrash {
  /** Whether the interrupted write reached the disk whole (else none of it did). */
  readonly keep: () => boolean
  /** Called once, right after the interrupted write: the process must act on nothing after it. */
  readonly died: () => void
}

/**
 * Memory storage on the world's disks whose next write can be interrupted by a crash. Raft's
 * storage contract makes each write atomic across crashes (a torn WAL batch is discarded whole on
 * recovery, a snapshot is renamed into place only once synced), so an interrupted write is either
 * all there or not at all; what matters is that its server never acts on it. After the crash
 * nothing more reaches the disk.
 */
export const crashingStorageLayer = (
  disks: Map<string, MemoryDisk>,
  armed: () => SaveCrash | undefined,
): Layer.Layer<Storage> =>
  Layer.succeed(Storage)(
    Storage.of({
      open: (name) =>
        Effect.sync(() => {
          let disk = disks.get(name)
          if (disk === undefined) {
            disk = new MemoryDisk()
            disks.set(name, disk)
          }
          return crashingStorage(openMemoryStorage(disk, simFlushOptions()), armed)
        }),
    }),
  )

/**
 * `KV_SIM_FLUSH_MS=<n>`: every write takes 1..n ms of (virtual) time to become durable, so that
 * inputs step the Raft core while a flush is in flight, as they do on a real disk. The delays
 * follow a fixed sequence per storage, so a seed still replays exactly.
 */
const simFlushOptions = (): MemoryStorageOptions => {
  const raw = process.env.KV_SIM_FLUSH_MS
  const max = raw === undefined ? 0 : Number(raw)
  if (!Number.isInteger(max) || max < 1) return {}
  let n = 0
  return { flushDelay: Effect.suspend(() => Effect.sleep(1 + ((n++ * 7919) % max))) }
}

const crashingStorage = (inner: RaftStorage, armed: () => SaveCrash | undefined): RaftStorage => {
  let dead = false
  const write = (apply: () => void): void => {
    if (dead) return
    const crash = armed()
    if (crash === undefined) {
      apply()
      return
    }
    dead = true
    if (crash.keep()) apply()
    crash.died()
  }
  return {
    load: () => inner.load(),
    save: (hardState, entries) => write(() => inner.save(hardState, entries)),
    // An interrupted write is a save that never finishes: the process acts on nothing after it.
    write: (hardState, entries, hint) => {
      if (!dead && armed() === undefined) return inner.write(hardState, entries, hint)
      write(() => inner.save(hardState, entries))
      return Effect.never
    },
    saveSnapshot: (snapshot) => write(() => inner.saveSnapshot(snapshot)),
    raftStateBytes: () => inner.raftStateBytes(),
    snapshotBytes: () => inner.snapshotBytes(),
    close: () => inner.close(),
  }
}
