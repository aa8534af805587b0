/**
 * Listing 100 keys under a prefix in a store of 1M keys, straight on the state machine (no network,
 * no Raft): what the ordered index costs per call, beside a full scan of the keys for comparison,
 * and what the index costs to build (1M puts) and to restore from a snapshot.
 *
 *   bun run packages/kvraft/bench/list.ts [keys=1000000]
 */
import { KvStateMachine } from "../src/stateMachine/index.ts"

const totalKeys = Number(process.argv[2] ?? 1_000_000)
const perPrefix = 100
const prefixes = totalKeys / perPrefix
const prefixOf = (i: number) => `user${String(i).padStart(6, "0")}/`

const machine = new KvStateMachine()
/** Every key, in write order: what a store without the index would have to scan. */
const allKeys: string[] = []
let seq = 0
const nowMs = 1_000
let started = performance.now()
// Written in a scattered order, as real traffic would, not already sorted.
for (let k = 0; k < perPrefix; k++) {
  for (let p = 0; p < prefixes; p++) {
    seq++
    const key = `${prefixOf((p * 7919) % prefixes)}${String(k).padStart(3, "0")}`
    allKeys.push(key)
    machine.apply({
      clientId: 1,
      seq,
      ackedBelow: seq,
      nowMs,
      op: { op: "put", key, value: "v".repeat(16) },
    })
  }
}
const buildMs = performance.now() - started
console.log(
  `${machine.size()} keys written in ${(buildMs / 1000).toFixed(1)} s (${((buildMs * 1000) / seq).toFixed(2)} µs per put)`,
)

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
const measure = (name: string, runs: number, body: (i: number) => number) => {
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    const count = body(i)
    times.push(performance.now() - t)
    if (count !== perPrefix) throw new Error(`${name}: listed ${count}, not ${perPrefix}`)
  }
  times.sort((a, b) => a - b)
  const mean = times.reduce((a, b) => a + b, 0) / runs
  console.log(
    `${name}: ${runs} calls, mean ${(mean * 1000).toFixed(1)} µs, p50 ${(percentile(times, 0.5) * 1000).toFixed(1)} µs, ` +
      `p99 ${(percentile(times, 0.99) * 1000).toFixed(1)} µs`,
  )
}

const pick = (i: number) => prefixOf((i * 104729) % prefixes)
measure("list 100 keys (values)", 10_000, (i) => machine.list(pick(i), { limit: 100 }).entries.length)
measure(
  "list 100 keys (keys only)",
  10_000,
  (i) => machine.list(pick(i), { limit: 100, keysOnly: true }).entries.length,
)
measure("2 pages of 50", 10_000, (i) => {
  const first = machine.list(pick(i), { limit: 50 })
  const last = first.entries[first.entries.length - 1]!.key
  return first.entries.length + machine.list(pick(i), { limit: 50, after: last }).entries.length
})

// For comparison: the same answer by scanning every key (what listing without the index costs).
measure("full scan of the keys, for comparison", 20, (i) => {
  const prefix = pick(i)
  return allKeys
    .filter((key) => key.startsWith(prefix))
    .sort()
    .slice(0, 100).length
})

started = performance.now()
const bytes = machine.snapshot()
const snapshotMs = performance.now() - started
started = performance.now()
const restored = KvStateMachine.restore(bytes)
const restoreMs = performance.now() - started
console.log(
  `snapshot ${(bytes.length / 1e6).toFixed(1)} MB in ${snapshotMs.toFixed(0)} ms; restore (index rebuilt from sorted keys) in ${restoreMs.toFixed(0)} ms; ${restored.size()} keys`,
)
