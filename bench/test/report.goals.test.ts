/**
 * Proves that the report checks issue 18's goals against the same run's etcd: one client's put at
 * least etcd's ops/s with a p99 no higher, put at 64 at least 3× and get at 64 at least 6×, each
 * row saying whether it is met; and three groups per process against one group.
 */
import { expect, test } from "bun:test"
import { renderMarkdown } from "../lib/report.ts"
import type { CellResult } from "../plan.ts"
import { cellResult } from "./support/cellResult.ts"

const cell = (workload: "put" | "get", concurrency: number, opsPerSecond: number, p99Ms: number): CellResult =>
  cellResult(workload, concurrency, opsPerSecond, { p99Ms, p999Ms: p99Ms * 2, maxMs: p99Ms * 3 })

const reportLines = (targets: Record<string, CellResult[]>) =>
  renderMarkdown({
    date: "2026-12-06",
    commit: "abc1234",
    machine: "test",
    command: "bun run bench",
    settings: "test",
    loadAverage: { before: 0, after: 0 },
    targets,
    skipped: {},
  }).split("\n")

const goalRows = (kvraft: CellResult[], etcd: CellResult[]) => {
  const lines = reportLines({ kvraft, etcd })
  const at = lines.findIndex((l) => l.startsWith("#### Goals"))
  const end = lines.findIndex((l, i) => i > at + 3 && !l.startsWith("|"))
  return lines.slice(at + 4, end === -1 ? undefined : end)
}

const etcd = [cell("put", 1, 600, 4.5), cell("put", 64, 2_000, 50), cell("get", 64, 4_000, 40)]

test("every goal of the run is met when kv clears each bar", () => {
  const rows = goalRows([cell("put", 1, 900, 4.4), cell("put", 64, 6_000, 20), cell("get", 64, 24_000, 8)], etcd)
  expect(rows).toEqual([
    "| put, 1 client, ≥ etcd ops/s | 900 (1.50×) | 600 | yes |",
    "| put, 1 client, p99 ≤ etcd's | 4.40 ms | 4.50 ms | yes |",
    "| put, 64 concurrent, ≥ 3× etcd ops/s | 6,000 (3.00×) | 2,000 | yes |",
    "| get, 64 concurrent, ≥ 6× etcd ops/s | 24,000 (6.00×) | 4,000 | yes |",
  ])
})

test("a goal just missed says no: a higher p99 at one client, put at 64 under 3×, get at 64 under 6×", () => {
  const rows = goalRows([cell("put", 1, 599, 4.6), cell("put", 64, 5_999, 20), cell("get", 64, 23_999, 8)], etcd)
  expect(rows.map((r) => r.split("|").at(-2)!.trim())).toEqual(["no", "no", "no", "no"])
})

test("with several rounds, one client's p99 is compared over every round's operations", () => {
  const pooled = (p99Ms: number) => ({ rounds: 5, ops: 15_000, p50Ms: 0.6, p99Ms, p999Ms: p99Ms * 2 })
  // The median rounds alone would say no (4.6 against 4.5); all five rounds together say yes.
  const rows = goalRows(
    [{ ...cell("put", 1, 900, 4.6), pooled: pooled(2.1) }],
    [{ ...cell("put", 1, 600, 4.5), pooled: pooled(2.2) }],
  )
  expect(rows[1]).toBe("| put, 1 client, p99 ≤ etcd's (all 5 rounds) | 2.10 ms | 2.20 ms | yes |")
  const lines = reportLines({ kvraft: [{ ...cell("put", 1, 900, 4.6), pooled: pooled(2.1) }] })
  const at = lines.findIndex((l) => l.startsWith("#### Latency over all rounds"))
  expect(lines[at + 4]?.replace(/ +/g, " ")).toBe("| kvraft | put c=1 100 B | 5 | 15,000 | 0.60 / 2.10 / 4.20 |")
})

test("three groups per process are checked against one group, cell by cell of the same run", () => {
  const lines = reportLines({
    "shardkv-1": [cell("put", 64, 8_000, 30), cell("get", 64, 30_000, 10)],
    "shardkv-3": [cell("put", 64, 9_000, 30)],
    "shardkv-3-hosts-shared": [cell("put", 64, 6_000, 30), cell("get", 64, 30_000, 10)],
  })
  const at = lines.findIndex((l) => l.startsWith("#### Three groups per process"))
  expect(at).toBeGreaterThan(0)
  // The groups spread over nine processes (shardkv-3) are not this goal's layout.
  expect(lines.slice(at + 4, at + 6).map((l) => l.replace(/ +/g, " "))).toEqual([
    "| shardkv-3-hosts-shared | put c=64 100 B | 6,000 (0.75×) | 8,000 | no |",
    "| shardkv-3-hosts-shared | get c=64 100 B | 30,000 (1.00×) | 30,000 | yes |",
  ])
  expect(lines[at + 6]).toBe("")
})
