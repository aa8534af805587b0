/**
 * Garbage per operation: the heap cells (objects, arrays, closures, strings, ...) that one put and
 * one get allocate across a three-replica group and its clerk, in one seeded world's virtual time
 * (memory storage, simulated network; the world's own bookkeeping is counted too). Every cell is
 * work for the collector, whose pauses make much of one client's latency tail (BENCHMARKS.md).
 *
 *   bun run packages/kvraft/bench/heapCells.ts [operations=300]
 *
 * `bun run bench:heap-cells` runs it with the default.
 *
 * JavaScriptCore's heap statistics (bun:jsc) count cells allocated since the last collection as
 * well as live ones, so the count over a run of operations, after a full collection, is what they
 * allocated; of five runs the largest count is kept (a collection in the middle of a run lowers it).
 */
import { heapStats } from "bun:jsc"
import { KvLab } from "../test/support/kvLab.ts"

const operations = Number(process.argv[2] ?? 300)
const RUNS = 5

/** Cells of each type allocated per call of `op`, the largest total of RUNS runs. */
const cellsPerOp = async (op: (i: number) => Promise<void>): Promise<Record<string, number>> => {
  let best: Record<string, number> = {}
  let bestTotal = -1
  for (let run = 0; run < RUNS; run++) {
    Bun.gc(true)
    const before = heapStats().objectTypeCounts
    for (let i = 0; i < operations; i++) await op(i)
    const after = heapStats().objectTypeCounts
    const perOp: Record<string, number> = {}
    let total = 0
    for (const [type, count] of Object.entries(after)) {
      const n = (count - (before[type] ?? 0)) / operations
      if (n <= 0) continue
      perOp[type] = n
      total += n
    }
    if (total > bestTotal) {
      bestTotal = total
      best = perOp
    }
  }
  return best
}

const line = (label: string, cells: Record<string, number>) => {
  const total = Object.values(cells).reduce((a, b) => a + b, 0)
  const top = Object.entries(cells)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([type, n]) => `${type} ${n.toFixed(1)}`)
    .join(", ")
  console.log(`${label}: ${total.toFixed(0)} cells (${top})`)
}

const lab = new KvLab(3, { seed: 7, maxRaftStateBytes: -1 })
const value = "x".repeat(100)
await lab.run(async (lab) => {
  const clerk = await lab.makeClerk()
  const put = async (i: number) => {
    await lab.world.driver.exit(clerk.client.put(`key-${i % 1000}`, value))
  }
  const get = async (i: number) => {
    await lab.world.driver.exit(clerk.client.get(`key-${i % 1000}`))
  }
  // The JIT's tiers and the group's first elections settle first.
  for (let i = 0; i < 3 * operations; i++) await put(i)
  console.log(`heap cells per operation, three replicas and one clerk in virtual time, ${operations} operations a run`)
  line("put, one client", await cellsPerOp(put))
  line("get, one client", await cellsPerOp(get))
}, 100_000_000)
