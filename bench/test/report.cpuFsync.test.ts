/**
 * Proves that the markdown report's CPU table has a row for every cell of every target, with the
 * servers' and the load's cores and µs per operation, and the fsyncs and datagrams per operation over
 * all the servers (their rates summed, over the cell's ops/s), left empty where there are no figures.
 */
import { expect, test } from "bun:test"
import { datagramsPerOp, fsyncsPerOp, renderMarkdown } from "../lib/report.ts"
import { cellResult as cell } from "./support/cellResult.ts"

const kvraft = [
  cell("put", 1, 500, {
    cpu: { "replica-0": 0.5, "replica-1": 0.25, "replica-2": 0.25, load: 0.1 },
    fsync: {
      "replica-0": { perSecond: 500, meanMs: 2, datagramsPerSecond: 1_500 },
      "replica-1": { perSecond: 500, meanMs: 2, datagramsPerSecond: 500 },
      "replica-2": { perSecond: 500, meanMs: 2, datagramsPerSecond: 500 },
    },
  }),
  cell("put", 64, 8_000, {
    cpu: { "replica-0": 1, "replica-1": 0.5, "replica-2": 0.5, load: 0.4 },
    fsync: {
      "replica-0": { perSecond: 400, meanMs: 2 },
      "replica-1": { perSecond: 400, meanMs: 2 },
      "replica-2": { perSecond: 400, meanMs: 2 },
    },
  }),
]
const etcd = [cell("put", 1, 700, { cpu: { "etcd-0": 0.3, "etcd-1": 0.1, "etcd-2": 0.1, load: 0.2 } })]

const cpuRows = (markdown: string) => {
  const lines = markdown.split("\n")
  const at = lines.findIndex((l) => l.startsWith("#### CPU"))
  const end = lines.findIndex((l, i) => i > at + 2 && !l.startsWith("|"))
  return lines.slice(at + 2, end)
}

test("fsyncs per operation sum every server's fsyncs over the window and divide by the operations", () => {
  expect(fsyncsPerOp(kvraft[0]!)).toBe(3)
  expect(fsyncsPerOp(kvraft[1]!)).toBeCloseTo(0.15, 10)
  expect(fsyncsPerOp(etcd[0]!)).toBeUndefined()
  expect(fsyncsPerOp({ ...kvraft[0]!, opsPerSecond: 0 })).toBeUndefined()
})

test("datagrams per operation sum every server's datagrams over the window; unknown when a server has none", () => {
  expect(datagramsPerOp(kvraft[0]!)).toBe(5)
  expect(datagramsPerOp(kvraft[1]!)).toBeUndefined()
  expect(datagramsPerOp(etcd[0]!)).toBeUndefined()
})

test("the CPU table has every cell of every target, the last ones included, with fsyncs per operation", () => {
  const markdown = renderMarkdown({
    date: "2026-12-06",
    commit: "abc1234",
    machine: "test",
    command: "bun run bench --quick",
    settings: "test",
    loadAverage: { before: 0, after: 0 },
    targets: { kvraft, etcd },
    skipped: {},
  })
  const [header, rule, ...rows] = cpuRows(markdown)
  const columns = header!.split("|").map((c) => c.trim())
  expect(columns).toContain("fsyncs/op (all servers)")
  expect(columns).toContain("datagrams/op (all servers)")
  expect(rule!.split("|").length).toBe(header!.split("|").length)
  expect(rows).toEqual([
    "| kvraft | put c=1 100 B | 0.50 / 0.25 / 0.25 | 0.10 | 2,000 | 200 | 3.000 | 5.00 | 500 (2.00) / 500 (2.00) / 500 (2.00) |",
    "| kvraft | put c=64 100 B | 1.00 / 0.50 / 0.50 | 0.40 | 250 | 50 | 0.150 |  | 400 (2.00) / 400 (2.00) / 400 (2.00) |",
    "| etcd | put c=1 100 B | 0.30 / 0.10 / 0.10 | 0.20 | 714 | 286 |  |  |  |",
  ])
})
