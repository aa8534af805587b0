// Measures (and prints, never asserts) what one durable save() costs: a single small entry, and a
// 64-entry batch sharing one fdatasync. Speed claims belong in bench/ and BENCHMARKS.md.
import { afterAll, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Entry, openFileStorage } from "../src/storage/index.ts"

const root = mkdtempSync(join(tmpdir(), "kv-storage-timing-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number

const describeTimes = (label: string, timesMs: number[]): string => {
  const sorted = [...timesMs].sort((a, b) => a - b)
  const mean = timesMs.reduce((sum, t) => sum + t, 0) / timesMs.length
  return `${label}: mean ${mean.toFixed(3)} ms, p50 ${percentile(sorted, 0.5).toFixed(3)} ms, p99 ${percentile(sorted, 0.99).toFixed(3)} ms (${timesMs.length} saves)`
}

test("save() cost of one small entry and of a 64-entry batch, each with one fdatasync", () => {
  const dir = join(root, "timing")
  const storage = openFileStorage(dir)
  const data = new Uint8Array(100).fill(1)
  let index = 0
  const next = (): Entry => {
    index += 1
    return { term: 1, index, data }
  }

  const single: number[] = []
  for (let k = 0; k < 200; k++) {
    const entry = next()
    const start = performance.now()
    storage.save({ term: 1, vote: 1, commit: index - 1 }, [entry])
    single.push(performance.now() - start)
  }
  const batched: number[] = []
  for (let k = 0; k < 50; k++) {
    const batch = Array.from({ length: 64 }, next)
    const start = performance.now()
    storage.save({ term: 1, vote: 1, commit: index - 64 }, batch)
    batched.push(performance.now() - start)
  }
  console.log(`storage timing in ${tmpdir()}`)
  console.log(describeTimes("save of 1 entry of 100 B", single))
  console.log(describeTimes("save of 64 entries of 100 B", batched))
  storage.close()

  const state = openFileStorage(dir).load()
  expect(state.entries).toHaveLength(200 + 50 * 64)
  expect(state.hardState).toEqual({ term: 1, vote: 1, commit: index - 64 })
}, 60_000)
