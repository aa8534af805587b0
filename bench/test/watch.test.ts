/**
 * Proves that the watch workload is chosen, planned and checked as documented: by name or with
 * --workloads, 1,000 watchers and 16 writers at 1,000 writes/s and as fast as answered; a watcher
 * that misses, repeats, reorders or invents an event fails the cell; and, against a real kvraft
 * group (and etcd when its binary is installed), every watcher gets every write of its prefix once
 * in order, while a watcher that loses one event is caught.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { makeKvClient } from "@kv/kvraft"
import { Effect } from "effect"
import { parseBenchArgs, UsageError, usage } from "../cli.ts"
import type { Driver } from "../drivers/driver.ts"
import { etcdDriver } from "../drivers/etcdDriver.ts"
import { kvDriver } from "../drivers/kvDriver.ts"
import { WatchAudit, writeNumberOf, writeValue } from "../drivers/watchAudit.ts"
import { startWatchCell, watchPrefixes } from "../drivers/watchCell.ts"
import { LatencyRecorder, Window } from "../lib/latency.ts"
import { openRpcNode } from "../lib/rpc.ts"
import { type Cell, cellsOf, LIST_VALUE_BYTES } from "../plan.ts"
import { etcdTarget } from "../targets/etcd.ts"
import { kvraftTarget } from "../targets/kvraft.ts"
import type { RunningTarget } from "../targets/target.ts"

describe("choosing and planning the watch workload", () => {
  test("named as an argument, it runs 1,000 watchers with 16 writers at 1,000 writes/s and at full speed", () => {
    const args = parseBenchArgs(["watch", "--rounds", "3"])
    expect(args.rounds).toBe(3)
    expect(cellsOf(args.matrix).map((c) => [c.workload, c.concurrency, c.watchers, c.writeRate, c.valueBytes])).toEqual(
      [
        ["watch", 16, 1000, 1000, LIST_VALUE_BYTES],
        ["watch", 16, 1000, 0, LIST_VALUE_BYTES],
      ],
    )
    expect(usage).toContain("watch ")
    expect(usage).toContain("--watchers")
  })

  test("--watchers, --write-rate and --concurrency reshape it; --workloads names it beside others", () => {
    const args = parseBenchArgs([
      "--workloads",
      "list100,watch",
      "--watchers",
      "200",
      "--write-rate",
      "max,500",
      "--concurrency",
      "64",
    ])
    expect(cellsOf(args.matrix).map((c) => [c.workload, c.concurrency, c.watchers, c.writeRate])).toEqual([
      ["list100", 64, undefined, undefined],
      ["watch", 64, 200, 0],
      ["watch", 64, 200, 500],
    ])
  })

  test("the default run leaves it out, and bad counts and rates are refused", () => {
    expect(cellsOf(parseBenchArgs([]).matrix).some((c) => c.workload === "watch")).toBe(false)
    expect(() => parseBenchArgs(["watch", "--watchers", "0"])).toThrow(UsageError)
    expect(() => parseBenchArgs(["watch", "--watchers", "10,20"])).toThrow(UsageError)
    expect(() => parseBenchArgs(["watch", "--write-rate", "0"])).toThrow(UsageError)
    expect(() => parseBenchArgs(["watch", "--write-rate", "fast"])).toThrow(UsageError)
    expect(() => parseBenchArgs(["watches"])).toThrow(UsageError)
  })

  test("prefixes are a cell's own, one shard each (hash tag), none a prefix of another", () => {
    const prefixes = watchPrefixes(3, 100)
    expect(prefixes[7]).toBe("{watch-3-007}/")
    expect(prefixes.some((p, i) => prefixes.some((q, j) => i !== j && q.startsWith(p)))).toBe(false)
    expect(new Set([...prefixes, ...watchPrefixes(4, 100)]).size).toBe(200)
  })

  test("a write's value names the write", () => {
    expect(writeNumberOf(writeValue(1234, 100))).toBe(1234)
    expect(writeValue(1234, 100)).toHaveLength(100)
    expect(writeNumberOf("mark")).toBeUndefined()
    expect(writeNumberOf(undefined)).toBeUndefined()
  })
})

/** Two prefixes, two watchers each; writes 0..3 alternate between the prefixes (writer 0 then 1). */
const fourWrites = () => {
  const audit = WatchAudit.spread(["a/", "b/"], 4)
  const revisions: number[] = []
  for (let n = 0; n < 4; n++) {
    const p = audit.choosePrefix()
    expect(audit.sent(p, n % 2)).toBe(n)
    audit.answered(n, true)
    revisions.push(10 + n)
  }
  /** Watcher w (prefix w mod 2) receives write n as every healthy store would send it. */
  const deliver = (w: number, n: number, revision = revisions[n]!) =>
    audit.delivered(w, `${audit.prefixes[n % 2]}k`, writeValue(n, 20), revision)
  return { audit, deliver }
}

describe("checking a watch cell", () => {
  test("every watcher with every write of its prefix once, in order, passes", () => {
    const { audit, deliver } = fourWrites()
    for (const w of [0, 1, 2, 3]) for (const n of w % 2 === 0 ? [0, 2] : [1, 3]) deliver(w, n)
    expect(audit.caughtUp()).toBe(true)
    expect(audit.verdict()).toEqual({
      ok: true,
      summary:
        "4 watchers over 2 prefixes received 8 events of 4 writes, each watcher every write of its prefix once, in order",
    })
  })

  test("a watcher that missed an acknowledged write fails, and is not caught up", () => {
    const { audit, deliver } = fourWrites()
    for (const w of [0, 1, 3]) for (const n of w % 2 === 0 ? [0, 2] : [1, 3]) deliver(w, n)
    deliver(2, 0)
    expect(audit.caughtUp()).toBe(false)
    const verdict = audit.verdict()
    expect(verdict.ok).toBe(false)
    expect(verdict.summary).toContain("watcher 2 (a/): 1 of 2 acknowledged writes never came")
  })

  test("a write delivered twice, writes out of revision order, and a foreign event fail", () => {
    const twice = fourWrites()
    for (const w of [0, 1, 2, 3]) for (const n of w % 2 === 0 ? [0, 2] : [1, 3]) twice.deliver(w, n)
    twice.deliver(0, 2)
    expect(twice.audit.verdict().summary).toContain("write 2 twice")

    const reordered = fourWrites()
    for (const w of [0, 1, 3]) for (const n of w % 2 === 0 ? [0, 2] : [1, 3]) reordered.deliver(w, n)
    reordered.deliver(2, 2)
    reordered.deliver(2, 0)
    expect(reordered.audit.verdict().summary).toContain("revision 10 after 12")

    const foreign = fourWrites()
    for (const w of [0, 1, 2, 3]) for (const n of w % 2 === 0 ? [0, 2] : [1, 3]) foreign.deliver(w, n)
    // Write 1 belongs to b/: a watcher of a/ must not see it.
    foreign.audit.delivered(0, "a/k", writeValue(1, 20), 20)
    expect(foreign.audit.verdict().summary).toContain("no write of its prefix")
  })

  test("a write of unknown outcome may come or not, but to every watcher of its prefix alike", () => {
    const make = () => {
      const { audit, deliver } = fourWrites()
      const n = audit.sent(audit.choosePrefix(), 0)
      audit.answered(n, false)
      for (const w of [0, 1, 2, 3]) for (const m of w % 2 === 0 ? [0, 2] : [1, 3]) deliver(w, m)
      return { audit, n, deliver: (w: number) => audit.delivered(w, "a/k", writeValue(n, 20), 20) }
    }
    const nowhere = make()
    expect(nowhere.audit.verdict().ok).toBe(true)
    const everywhere = make()
    everywhere.deliver(0)
    everywhere.deliver(2)
    expect(everywhere.audit.verdict().ok).toBe(true)
    expect(everywhere.audit.verdict().summary).toContain("(1 of unknown outcome)")
    const once = make()
    once.deliver(0)
    expect(once.audit.verdict().summary).toContain("received other writes than watcher 0")
  })

  test("a watch that ended by itself fails the cell", () => {
    const { audit, deliver } = fourWrites()
    for (const w of [0, 1, 2, 3]) for (const n of w % 2 === 0 ? [0, 2] : [1, 3]) deliver(w, n)
    audit.ended(3, "Compacted")
    expect(audit.verdict().summary).toContain("watcher 3 (b/): its watch ended: Compacted")
  })

  test("latency counts from the put's answer, events inside the window only; from the send beside it", () => {
    const audit = WatchAudit.spread(["a/"], 2)
    const n = audit.sent(0, 0, 100)
    audit.answered(n, true, 110)
    audit.delivered(0, "a/k", writeValue(n, 20), 5, 108)
    audit.delivered(1, "a/k", writeValue(n, 20), 5, 115)
    const late = audit.sent(0, 0, 200)
    audit.answered(late, true, 205)
    audit.delivered(0, "a/k", writeValue(late, 20), 6, 400)
    const recorder = new LatencyRecorder()
    const measured = audit.measure(recorder, 100, 300)
    const figures = recorder.figures(1)
    expect(figures.ops).toBe(2)
    // -2 ms (the event came before the answer) and 5 ms.
    expect([figures.p50Ms, figures.maxMs]).toEqual([5, 5])
    expect(measured).toEqual({ fromSendP50Ms: 15, fromSendP99Ms: 15, answered: 2, failed: 0 })
  })
})

const running: RunningTarget[] = []
afterAll(async () => {
  await Promise.all(running.map((t) => t.stop()))
})

const shortCell = (writeRate: number): Cell => ({
  workload: "watch",
  concurrency: 8,
  valueBytes: LIST_VALUE_BYTES,
  watchers: 200,
  writeRate,
  warmupSeconds: 0.3,
  seconds: 1,
})

/** Runs one short watch cell through `driver`, as the load process does. */
const runShortCell = async (driver: Driver, cell: Cell, index: number) => {
  const watching = await startWatchCell(driver, cell, index, { catchUpMs: 3_000 })
  const window = new Window(cell.warmupSeconds, cell.seconds)
  const outcome = await watching.run(window)
  return { ...outcome, figures: window.recorder.figures(cell.seconds) }
}

/** Passes every event on but the first of watcher 7 (writes go to the prefixes in turn: prefix 7 gets the 8th): a store that lost one delivery. */
const losingOneEvent = (driver: Driver): Driver => ({
  ...driver,
  async watchPrefix(prefix, fromRevision, handlers) {
    let seen = 0
    const lossy = prefix.endsWith("-007}/")
    return driver.watchPrefix(prefix, fromRevision, {
      ...handlers,
      event: (key, value, modRevision) => {
        if (lossy && ++seen === 1) return
        handlers.event(key, value, modRevision)
      },
    })
  },
})

/** A steady cell and a full-speed one pass; a lost event is caught. */
const drivesTarget = async (driver: Driver) => {
  for (const [index, cell] of [shortCell(300), shortCell(0)].entries()) {
    const { verdict, watch, figures } = await runShortCell(driver, cell, index)
    console.log(
      `watch ${cell.writeRate}/s: ${watch.writesPerSecond} writes/s, ${figures.opsPerSecond} events/s, p50 ${figures.p50Ms.toFixed(2)} ms; ${verdict.summary}`,
    )
    expect(verdict.ok).toBe(true)
    expect(watch.prefixes).toBe(100)
    expect(watch.writesPerSecond).toBeGreaterThan(0)
    // Every write reaches the 2 watchers of its prefix.
    expect(figures.ops).toBeGreaterThan(watch.writesPerSecond)
  }
  // Only watcher 7 watches prefix 7 once there are as many prefixes as watchers.
  const lossy = await runShortCell(losingOneEvent(driver), { ...shortCell(300), watchers: 100 }, 2)
  expect(lossy.verdict.ok).toBe(false)
  expect(lossy.verdict.summary).toContain("watcher 7 ({watch-2-007}/): 1 of")
}

describe("the watch workload against real clusters", () => {
  test("kvraft: every watcher gets every write of its prefix once, in order", async () => {
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

  test("etcd: the same through its Watch API", async () => {
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
