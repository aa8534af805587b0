/**
 * Proves that the coordination workloads (cas-incr, list100) are chosen, planned and checked as
 * documented: by name or with --workloads, 64 workers over 1 and 64 counters; a counter that does
 * not hold its acknowledged increments fails the cell; and, against a real kvraft group (and etcd
 * when its binary is installed), the drivers' increments all land and every listing is whole.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { makeKvClient } from "@kv/kvraft"
import { Effect } from "effect"
import { parseBenchArgs, UsageError } from "../cli.ts"
import { CellAudit } from "../drivers/audit.ts"
import type { Driver } from "../drivers/driver.ts"
import { etcdDriver } from "../drivers/etcdDriver.ts"
import { kvDriver } from "../drivers/kvDriver.ts"
import { counterNames, listingProblem, listKeyName, listKeys, listPrefix, OpSource } from "../drivers/ops.ts"
import { Window } from "../lib/latency.ts"
import { openRpcNode } from "../lib/rpc.ts"
import { type Cell, cellsOf, fullMatrix, LIST_VALUE_BYTES } from "../plan.ts"
import { etcdTarget } from "../targets/etcd.ts"
import { kvraftTarget } from "../targets/kvraft.ts"
import type { RunningTarget } from "../targets/target.ts"

describe("choosing and planning the coordination workloads", () => {
  test("named as arguments, they run at 64 workers over 1 and 64 counters, then list100", () => {
    const args = parseBenchArgs(["cas-incr", "list100", "--rounds", "3"])
    expect(args.rounds).toBe(3)
    expect(cellsOf(args.matrix).map((c) => [c.workload, c.concurrency, c.counters, c.valueBytes])).toEqual([
      ["cas-incr", 64, 1, LIST_VALUE_BYTES],
      ["cas-incr", 64, 64, LIST_VALUE_BYTES],
      ["list100", 64, undefined, LIST_VALUE_BYTES],
    ])
  })

  test("--workloads names them too, beside the basic ones, and --concurrency and --counters reshape them", () => {
    const args = parseBenchArgs([
      "--workloads",
      "put,cas-incr",
      "--concurrency",
      "8",
      "--counters",
      "2",
      "--sizes",
      "100",
    ])
    expect(cellsOf(args.matrix).map((c) => [c.workload, c.concurrency, c.counters])).toEqual([
      ["put", 8, undefined],
      ["cas-incr", 8, 2],
    ])
  })

  test("the default run leaves them out", () => {
    expect(cellsOf(parseBenchArgs([]).matrix).some((c) => c.workload === "cas-incr" || c.workload === "list100")).toBe(
      false,
    )
    expect(cellsOf(fullMatrix)).toHaveLength(32)
  })

  test("an unknown workload, a flag without its value and a zero round count are refused", () => {
    expect(() => parseBenchArgs(["cas-inc"])).toThrow(UsageError)
    expect(() => parseBenchArgs(["--workloads", "list"])).toThrow(UsageError)
    expect(() => parseBenchArgs(["--counters"])).toThrow(UsageError)
    expect(() => parseBenchArgs(["--rounds", "0"])).toThrow(UsageError)
    expect(() => parseBenchArgs(["--frobnicate"])).toThrow(UsageError)
  })

  test("workers pick counters among the cell's own and prefixes among the hundred", () => {
    const cas: Cell = {
      workload: "cas-incr",
      concurrency: 4,
      valueBytes: 100,
      warmupSeconds: 0,
      seconds: 1,
      counters: 3,
    }
    const casOps = new OpSource(cas, 7, 1000)
    const counters = new Set(Array.from({ length: 200 }, (_, n) => casOps.next(n % 4).key))
    expect([...counters].sort()).toEqual(counterNames(7, 3))
    const list: Cell = { workload: "list100", concurrency: 4, valueBytes: 100, warmupSeconds: 0, seconds: 1 }
    const listOps = new OpSource(list, 0, 1000)
    const prefixes = Array.from({ length: 500 }, (_, n) => listOps.next(n % 4))
    expect(prefixes.every((op) => op.kind === "list" && /^dir-0\d\d\/$/.test(op.key))).toBe(true)
    expect(new Set(prefixes.map((op) => op.key)).size).toBeGreaterThan(90)
  })
})

describe("checking a cell", () => {
  test("a counter that lost an acknowledged increment, or holds one too many, fails the check", () => {
    const audit = new CellAudit(["c0", "c1"])
    for (let n = 0; n < 5; n++) audit.incremented("c0")
    audit.incremented("c1")
    expect(
      audit.counterVerdict(
        new Map([
          ["c0", "5"],
          ["c1", "1"],
        ]),
      ),
    ).toEqual({
      ok: true,
      summary: "2 counters hold 6, acknowledged increments 6",
    })
    const lost = audit.counterVerdict(
      new Map([
        ["c0", "4"],
        ["c1", "1"],
      ]),
    )
    expect(lost.ok).toBe(false)
    expect(lost.summary).toContain("c0 = 4, acknowledged 5")
    expect(
      audit.counterVerdict(
        new Map([
          ["c0", "5"],
          ["c1", "2"],
        ]),
      ).ok,
    ).toBe(false)
    // An absent counter holds 0: every acknowledged increment on it was lost.
    expect(audit.counterVerdict(new Map([["c0", "5"]])).ok).toBe(false)
  })

  test("an increment whose outcome is unknown may or may not be in the counter", () => {
    const audit = new CellAudit(["c0"])
    audit.incremented("c0")
    audit.outcomeUnknown("c0")
    expect(audit.counterVerdict(new Map([["c0", "1"]])).ok).toBe(true)
    expect(audit.counterVerdict(new Map([["c0", "2"]])).ok).toBe(true)
    expect(audit.counterVerdict(new Map([["c0", "3"]])).ok).toBe(false)
  })

  test("a listing must hold exactly its prefix's hundred keys in byte order", () => {
    const keys = Array.from({ length: 100 }, (_, k) => listKeyName(42, k))
    expect(listingProblem(listPrefix(42), keys)).toBeUndefined()
    expect(listingProblem(listPrefix(42), keys.slice(1))).toContain("99 keys")
    expect(listingProblem(listPrefix(42), [keys[1]!, keys[0]!, ...keys.slice(2)])).toContain("key 0")
    const audit = new CellAudit()
    audit.listed(undefined)
    audit.listed(listingProblem(listPrefix(42), keys.slice(1)))
    expect(audit.listingVerdict().ok).toBe(false)
  })
})

describe("the measured window", () => {
  test("opens and closes from the workers' own polls when no timer can run", () => {
    const moments: string[] = []
    const window = new Window(0.005, 0.01, {
      opened: () => moments.push("opened"),
      closed: () => moments.push("closed"),
    })
    // Busy workers that never yield to the event loop, as 64 kv fibers listing did under load.
    while (window.open) {}
    expect(moments).toEqual(["opened", "closed"])
    window.finish()
    expect(moments).toEqual(["opened", "closed"])
  })

  test("an increment counts when it ends inside the window, even if it began in the warm-up", () => {
    const window = new Window(0, 60)
    window.incrementDone(window.startedAt - 1, true)
    window.done(window.startedAt - 1, true)
    const figures = window.recorder.figures(60)
    expect(figures.ops).toBe(1)
  })
})

/** Runs one short cell of `cell` through `driver` and returns its figures and check. */
const runShortCell = async (driver: Driver, cell: Cell, index: number) => {
  const audit = new CellAudit(cell.workload === "cas-incr" ? counterNames(index, cell.counters ?? 1) : [])
  const window = new Window(cell.warmupSeconds, cell.seconds)
  await driver.runCell(cell, new OpSource(cell, index, 1000), window, audit)
  window.finish()
  const verdict =
    cell.workload === "cas-incr" ? audit.counterVerdict(await driver.read(audit.counters)) : audit.listingVerdict()
  return { figures: window.recorder.figures(cell.seconds), verdict, audit }
}

const cas = (counters: number): Cell => ({
  workload: "cas-incr",
  concurrency: 16,
  valueBytes: 100,
  warmupSeconds: 0.3,
  seconds: 1.5,
  counters,
})
const list100: Cell = { workload: "list100", concurrency: 16, valueBytes: 100, warmupSeconds: 0.3, seconds: 1 }

const running: RunningTarget[] = []
afterAll(async () => {
  await Promise.all(running.map((t) => t.stop()))
})

/** The same cells against one target: every counter holds its acknowledged increments, every listing is whole. */
const drivesTarget = async (driver: Driver) => {
  for (const [index, cell] of [cas(1), cas(4)].entries()) {
    const { figures, verdict, audit } = await runShortCell(driver, cell, index)
    console.log(`${cell.workload} ${cell.counters} counters: ${figures.opsPerSecond}/s, ${verdict.summary}`)
    expect(verdict.ok).toBe(true)
    expect(audit.increments).toBeGreaterThan(0)
    expect(figures.ops).toBeGreaterThan(0)
    expect(figures.conditionalWrites).toBeGreaterThanOrEqual(figures.ops)
  }
  await driver.preload(listKeys(), "v".repeat(LIST_VALUE_BYTES))
  const { figures, verdict } = await runShortCell(driver, list100, 2)
  console.log(`list100: ${figures.opsPerSecond}/s, ${verdict.summary}`)
  expect(verdict.ok).toBe(true)
  expect(figures.ops).toBeGreaterThan(0)
  expect(figures.errors).toBe(0)
}

describe("the drivers against real clusters", () => {
  test("kvraft: cas-incr's counters hold every acknowledged increment and list100 reads whole prefixes", async () => {
    const target = await kvraftTarget({ maxRaftStateBytes: 64 * 1024 * 1024 }).start()
    running.push(target)
    if (target.client.kind !== "kvraft") throw new Error("a kvraft target without kvraft servers")
    const { rpc, close } = await openRpcNode()
    const client = await Effect.runPromise(makeKvClient(rpc, { servers: target.client.servers }))
    const driver = kvDriver(client, close)
    try {
      await drivesTarget(driver)
    } finally {
      await driver.close()
    }
  }, 60_000)

  test("etcd: the same with get + Txn and a prefix Range", async () => {
    if (Bun.which("etcd") === null) throw new Error("etcd is not installed: apt-get install -y etcd-server")
    const target = await etcdTarget().start()
    running.push(target)
    if (target.client.kind !== "etcd") throw new Error("an etcd target without endpoints")
    const driver = etcdDriver(target.client.endpoints)
    try {
      await drivesTarget(driver)
    } finally {
      await driver.close()
    }
  }, 60_000)
})
