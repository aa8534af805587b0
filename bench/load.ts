/**
 * The load process: started by run.ts with an IPC channel, it receives one target and the cells to
 * run, drives them one after another, and reports each cell's figures (and the moments its
 * measured window opens and closes, so run.ts can read the servers' CPU over the same window).
 */

import { makeKvClient } from "@kv/kvraft"
import { makeShardKvClient } from "@kv/shardkv"
import { Effect } from "effect"
import { CellAudit } from "./drivers/audit.ts"
import type { Driver } from "./drivers/driver.ts"
import { etcdDriver } from "./drivers/etcdDriver.ts"
import { type KvClientFactory, kvDriver } from "./drivers/kvDriver.ts"
import { counterNames, keyName, listKeys, OpSource, valueOfBytes } from "./drivers/ops.ts"
import { startWatchCell } from "./drivers/watchCell.ts"
import { Window } from "./lib/latency.ts"
import { openRpcNode } from "./lib/rpc.ts"
import {
  type Cell,
  type ClientSpec,
  type FromLoad,
  isCoordination,
  LIST_VALUE_BYTES,
  type ToLoad,
  type Verdict,
  type WatchFigures,
} from "./plan.ts"

export type LoadWindowMessage = { readonly type: "measured"; readonly index: number }

const send = (message: FromLoad | LoadWindowMessage) => process.send?.(message)

const kvClientDriver = async (factory: KvClientFactory): Promise<Driver> => {
  const { rpc, close } = await openRpcNode()
  const client = await Effect.runPromise(factory(rpc))
  return kvDriver(client, close)
}

const driverFor = async (spec: ClientSpec): Promise<Driver> => {
  switch (spec.kind) {
    case "kvraft":
      return kvClientDriver((rpc) => makeKvClient(rpc, { servers: spec.servers }))
    case "etcd":
      return etcdDriver(spec.endpoints)
    case "shardkv":
      return kvClientDriver((rpc) => makeShardKvClient(rpc, { controllers: spec.controllers }))
  }
}

const cpuSeconds = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/** After a coordination cell, with every worker stopped: does the store hold what the clients were told? */
const verdictOf = async (driver: Driver, cell: Cell, audit: CellAudit): Promise<Verdict | undefined> => {
  switch (cell.workload) {
    case "cas-incr":
      return audit.counterVerdict(await driver.read(audit.counters))
    case "list100":
      return audit.listingVerdict()
    default:
      return undefined
  }
}

const run = async (message: ToLoad) => {
  const driver = await driverFor(message.client)
  try {
    // What has been written before the cells that read it: "basic:<size>" or "list".
    const preloaded = new Set<string>()
    const preload = async (what: string, keys: () => readonly string[], value: string) => {
      if (preloaded.has(what)) return
      await driver.preload(keys(), value)
      preloaded.add(what)
    }
    const preloadBasic = (valueBytes: number) =>
      preload(
        `basic:${valueBytes}`,
        () => Array.from({ length: message.keys }, (_, n) => keyName(n)),
        valueOfBytes(valueBytes),
      )
    const first = message.cells[0]
    if (first !== undefined && message.targetWarmupSeconds > 0) {
      const warmup = {
        ...first,
        workload: "mixed",
        concurrency: 16,
        valueBytes: isCoordination(first.workload) ? LIST_VALUE_BYTES : first.valueBytes,
        warmupSeconds: message.targetWarmupSeconds,
        seconds: 0,
      } as const
      await preloadBasic(warmup.valueBytes)
      await driver.runCell(
        warmup,
        new OpSource(warmup, -1, message.keys),
        new Window(warmup.warmupSeconds, 0),
        new CellAudit(),
      )
    }
    for (const [index, cell] of message.cells.entries()) {
      if (cell.workload === "get" || cell.workload === "mixed") await preloadBasic(cell.valueBytes)
      if (cell.workload === "list100") await preload("list", listKeys, valueOfBytes(LIST_VALUE_BYTES))
      const audit = new CellAudit(cell.workload === "cas-incr" ? counterNames(index, cell.counters ?? 1) : [])
      // Its watchers start before the window does: etcd's client opens its watches one after another.
      const watching = cell.workload === "watch" ? await startWatchCell(driver, cell, index) : undefined
      let cpuAtStart = Number.NaN
      let loadCpu = Number.NaN
      const window = new Window(cell.warmupSeconds, cell.seconds, {
        opened: () => {
          cpuAtStart = cpuSeconds()
          send({ type: "measuring", index })
        },
        closed: () => {
          loadCpu = (cpuSeconds() - cpuAtStart) / cell.seconds
          send({ type: "measured", index })
        },
      })
      // Workers that wait on slow answers do not poll the window: the timers do then.
      const opened = setTimeout(() => window.poll(), window.measureFrom - performance.now())
      const closed = setTimeout(() => window.poll(), window.until - performance.now())
      let verdict: Verdict | undefined
      let watch: WatchFigures | undefined
      if (watching !== undefined) {
        ;({ verdict, watch } = await watching.run(window))
        clearTimeout(opened)
        clearTimeout(closed)
      } else {
        await driver.runCell(cell, new OpSource(cell, index, message.keys), window, audit)
        clearTimeout(opened)
        clearTimeout(closed)
        // The last answers may be handled before the timer: the window is over either way.
        window.finish()
        verdict = await verdictOf(driver, cell, audit)
      }
      send({
        type: "cell",
        index,
        figures: window.recorder.figures(cell.seconds),
        loadCpu,
        ...(verdict === undefined ? {} : { verdict }),
        ...(watch === undefined ? {} : { watch }),
      })
    }
    send({ type: "done" })
  } finally {
    await driver.close()
  }
}

process.on("message", (message: ToLoad) => {
  run(message).then(
    () => process.exit(0),
    (error) => {
      send({ type: "failed", message: error instanceof Error ? (error.stack ?? error.message) : String(error) })
      process.exit(1)
    },
  )
})
// The orchestrator going away (Ctrl-C, crash) takes the load with it.
process.on("disconnect", () => process.exit(0))
