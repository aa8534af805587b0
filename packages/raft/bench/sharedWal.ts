/**
 * Durable writes of several replicas in one process: a write-ahead log per replica (FileStorage)
 * against one shared log (SharedWal), with no network and no Raft, so only the disk and the
 * flushing policy differ.
 *
 *   bun run packages/raft/bench/sharedWal.ts [--replicas 3,9] [--seconds 5] [--bytes 100] [--rounds 3]
 *
 * Each replica loops: write one entry of `bytes` and a hard state, wait until it is durable (the
 * replicas in step, the best case for sharing; Raft replicas of different groups are not). Reports
 * writes/s over all replicas, fdatasyncs/s and writes per fdatasync, and the mean write wait, per
 * layout, alternating the layouts round by round (the disk is shared with other work).
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { openFileStorage, type RaftStorage, SharedWal } from "../src/storage/index.ts"

const argument = (name: string, fallback: string): string => {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback
}
const replicaCounts = argument("replicas", "3,9").split(",").map(Number)
const seconds = Number(argument("seconds", "5"))
const bytes = Number(argument("bytes", "100"))
const rounds = Number(argument("rounds", "3"))

interface Figures {
  readonly writesPerSecond: number
  readonly flushesPerSecond: number
  readonly meanWaitMs: number
}

const drive = async (storages: readonly RaftStorage[], flushes: () => number | undefined): Promise<Figures> => {
  const data = new Uint8Array(bytes).fill(7)
  const deadline = performance.now() + seconds * 1000
  let writes = 0
  let waited = 0
  await Promise.all(
    storages.map(async (storage) => {
      for (let index = 1; performance.now() < deadline; index++) {
        const started = performance.now()
        await Effect.runPromise(storage.write({ term: 1, vote: 1, commit: index - 1 }, [{ term: 1, index, data }]))
        waited += performance.now() - started
        writes++
      }
    }),
  )
  const flushCount = flushes() ?? writes
  return { writesPerSecond: writes / seconds, flushesPerSecond: flushCount / seconds, meanWaitMs: waited / writes }
}

const perReplica = async (root: string, n: number): Promise<Figures> => {
  const storages = Array.from({ length: n }, (_, k) => openFileStorage(join(root, `replica-${k}`)))
  try {
    // One fdatasync per write: FileStorage flushes each batch on its own.
    return await drive(storages, () => undefined)
  } finally {
    for (const storage of storages) storage.close()
  }
}

const shared = async (root: string, n: number): Promise<Figures> => {
  const wal = SharedWal.open(root)
  const storages = Array.from({ length: n }, (_, k) => wal.openReplica(`replica-${k}`))
  const before = wal.stats().flushes
  try {
    return await drive(storages, () => wal.stats().flushes - before)
  } finally {
    wal.close()
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}

const layouts = { "WAL per replica": perReplica, "shared WAL": shared }
console.log(`${seconds} s per run, ${bytes} B entries, ${rounds} alternating rounds, medians by writes/s`)
console.log("| replicas | layout | writes/s | fdatasyncs/s | writes per fdatasync | mean wait ms | rounds (writes/s) |")
console.log("|---:|---|---:|---:|---:|---:|---|")
for (const n of replicaCounts) {
  const results = new Map<string, Figures[]>()
  for (let round = 0; round < rounds; round++) {
    for (const [name, run] of Object.entries(layouts)) {
      const root = mkdtempSync(join(process.env.KV_BENCH_DIR ?? tmpdir(), "kv-shared-wal-bench-"))
      try {
        results.set(name, [...(results.get(name) ?? []), await run(root, n)])
      } finally {
        rmSync(root, { recursive: true, force: true })
      }
    }
  }
  for (const [name, figures] of results) {
    const middle = median(figures.map((f) => f.writesPerSecond))
    const chosen = figures.find((f) => f.writesPerSecond === middle) as Figures
    console.log(
      `| ${n} | ${name} | ${chosen.writesPerSecond.toFixed(0)} | ${chosen.flushesPerSecond.toFixed(0)} | ${(chosen.writesPerSecond / chosen.flushesPerSecond).toFixed(2)} | ${chosen.meanWaitMs.toFixed(2)} | ${figures.map((f) => f.writesPerSecond.toFixed(0)).join(", ")} |`,
    )
  }
}
