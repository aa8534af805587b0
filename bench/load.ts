/**
 * The load process: started by run.ts with an IPC channel, it receives one target and the cells to
 * run, drives them one after another, and reports each cell's figures (and the moments its
 * measured window opens and closes, so run.ts can read the servers' CPU over the same window).
 */

import { makeKvClient } from "@kv/kvraft"
import { makeShardKvClient } from "@kv/shardkv"
import { Effect } from "effect"
import type { Driver } from "./drivers/driver.ts"
import { etcdDriver } from "./drivers/etcdDriver.ts"
import { type KvClientFactory, kvDriver } from "./drivers/kvDriver.ts"
import { OpSource } from "./drivers/ops.ts"
import { Window } from "./lib/latency.ts"
import { openRpcNode } from "./lib/rpc.ts"
import type { ClientSpec, FromLoad, ToLoad } from "./plan.ts"

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

const run = async (message: ToLoad) => {
  const driver = await driverFor(message.client)
  try {
    const preloaded = new Set<number>()
    const preload = async (valueBytes: number) => {
      if (preloaded.has(valueBytes)) return
      await driver.preload(message.keys, valueBytes)
      preloaded.add(valueBytes)
    }
    const first = message.cells[0]
    if (first !== undefined && message.targetWarmupSeconds > 0) {
      const warmup = {
        ...first,
        workload: "mixed",
        concurrency: 16,
        warmupSeconds: message.targetWarmupSeconds,
        seconds: 0,
      } as const
      await preload(warmup.valueBytes)
      await driver.runCell(warmup, new OpSource(warmup, -1, message.keys), new Window(warmup.warmupSeconds, 0))
    }
    for (const [index, cell] of message.cells.entries()) {
      if (cell.workload === "get" || cell.workload === "mixed") await preload(cell.valueBytes)
      const window = new Window(cell.warmupSeconds, cell.seconds)
      let cpuAtStart = Number.NaN
      let loadCpu: number | undefined
      const open = () => {
        cpuAtStart = cpuSeconds()
        send({ type: "measuring", index })
      }
      const close = () => {
        if (loadCpu !== undefined) return
        loadCpu = (cpuSeconds() - cpuAtStart) / cell.seconds
        send({ type: "measured", index })
      }
      const opened = setTimeout(open, window.measureFrom - performance.now())
      const closed = setTimeout(close, window.until - performance.now())
      await driver.runCell(cell, new OpSource(cell, index, message.keys), window)
      clearTimeout(opened)
      clearTimeout(closed)
      // The last answers may be handled before the timer: the window is over either way.
      close()
      send({ type: "cell", index, figures: window.recorder.figures(cell.seconds), loadCpu: loadCpu ?? Number.NaN })
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
