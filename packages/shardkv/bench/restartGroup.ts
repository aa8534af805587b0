/**
 * A shard group's restart after a crash, measured from outside: a 3-replica controller and one
 * group of 3 replicas on loopback, the group filled with N keys of V bytes (transactions of 100 keys
 * of one shard, so every replica holds a snapshot and a tail of log), every process killed (kill -9);
 * then, per run, from a copy of that data: the controller started and answering, the group's three
 * replicas started at once, and their status polled every few ms until the group answers a
 * linearizable get of the last key written. Printed per run: each replica's first status answer
 * and its applied index then (0 while it still restores its snapshot), when a leader is known,
 * when the leader has applied everything, and the get, in ms since the group's exec; and each
 * replica's CPU seconds at the get.
 *
 *   bun run bench:restart-shards [--keys N] [--value-bytes V] [--runs R] [--reuse DIR] [--exe PATH ...]
 *
 * --reuse DIR fills once into DIR and restarts copies of it later; --exe (repeatable) restarts the
 * group with a packaged executable (`bun run build`'s dist/bin/kv-shardkv), alternating them run by
 * run; the fill and the controller run from source.
 */
import { cpSync, existsSync } from "node:fs"
import { loadavg } from "node:os"
import { join, resolve } from "node:path"
import { parseArgs } from "node:util"
import { makeControllerClient, shardOf } from "@kv/shardctrler"
import { Effect } from "effect"
import { timeUntil } from "../../../bench/lib/poll.ts"
import {
  cleanUpOnExit,
  cpuSecondsOf,
  freeUdpPorts,
  makeTempDir,
  removeTempDir,
  type Started,
  start,
  stop,
} from "../../../bench/lib/processes.ts"
import { openRpcNode } from "../../../bench/lib/rpc.ts"
import { makeShardKvClient, ShardKvStatusMethod } from "../src/index.ts"

const { values: options } = parseArgs({
  options: {
    keys: { type: "string", default: "500000" },
    "value-bytes": { type: "string", default: "100" },
    runs: { type: "string", default: "3" },
    reuse: { type: "string" },
    exe: { type: "string", multiple: true },
    "poll-ms": { type: "string", default: "5" },
  },
})
const keyCount = Number(options.keys)
const valueBytes = Number(options["value-bytes"])
const pollMs = Number(options["poll-ms"])
const N_SHARDS = 10
const GID = 100
const PER_TXN = 100
const CONTROLLER_BIN = join(import.meta.dir, "../../shardctrler/bin/shardctrler.ts")
const SHARDKV_BIN = join(import.meta.dir, "../bin/shardkv.ts")
// Absolute: the replicas start in their own directories.
const servers: string[][] =
  (options.exe ?? []).length > 0 ? options.exe!.map((exe) => [resolve(exe)]) : [["bun", SHARDKV_BIN]]

const keyOf = (i: number) => `key${String(i).padStart(8, "0")}`
const valueFor = (i: number) => String(i).padStart(valueBytes, "v")

interface Fill {
  readonly controllers: string[]
  readonly replicas: string[]
  readonly target: number
  readonly snapshotIndexes: number[]
}

const { rpc, close } = await openRpcNode()
const status = (address: string) =>
  Effect.runPromise(rpc.call(address, ShardKvStatusMethod, {}, { deadlineMs: 200, attemptTimeoutMs: 100 }))

const startControllers = (dir: string, controllers: string[]): Started[] =>
  controllers.map((_, k) =>
    start(`controller-${k}`, ["bun", CONTROLLER_BIN, "--replica", String(k), "--config", join(dir, "cluster.toml")], {
      cwd: dir,
    }),
  )
const startGroup = (dir: string, command: readonly string[], phase: string): Started[] =>
  [0, 1, 2].map((k) =>
    start(
      `${phase}-${k}`,
      [...command, "--gid", String(GID), "--replica", String(k), "--config", join(dir, "cluster.toml")],
      {
        cwd: dir,
      },
    ),
  )

const fill = async (dir: string): Promise<Fill> => {
  const ports = await freeUdpPorts(6)
  const controllers = ports.slice(0, 3).map((p) => `127.0.0.1:${p}`)
  const replicas = ports.slice(3).map((p) => `127.0.0.1:${p}`)
  await Bun.write(
    join(dir, "cluster.toml"),
    `dataDir = "./data"\nnShards = ${N_SHARDS}\n[controller]\nreplicas = ${JSON.stringify(controllers)}\n[groups.${GID}]\nreplicas = ${JSON.stringify(replicas)}\n`,
  )
  const processes = [...startControllers(dir, controllers), ...startGroup(dir, ["bun", SHARDKV_BIN], "fill")]
  try {
    const admin = await Effect.runPromise(makeControllerClient(rpc, { controllers, deadlineMs: 30_000 }))
    await Effect.runPromise(admin.join({ [String(GID)]: replicas }))
    const client = await Effect.runPromise(makeShardKvClient(rpc, { controllers, deadlineMs: 120_000 }))
    const buckets = Array.from({ length: N_SHARDS }, () => [] as number[])
    const txns: number[][] = []
    for (let i = 0; i < keyCount; i++) {
      const bucket = buckets[shardOf(keyOf(i), N_SHARDS)]!
      bucket.push(i)
      if (bucket.length === PER_TXN) txns.push(bucket.splice(0))
    }
    for (const bucket of buckets) if (bucket.length > 0) txns.push(bucket)
    // The last key goes last, so reading it proves the whole fill was applied.
    const last = txns.findIndex((t) => t.includes(keyCount - 1))
    txns.push(...txns.splice(last, 1))
    const filled = performance.now()
    let next = 0
    const worker = async () => {
      while (next < txns.length - 1) {
        const txn = txns[next++]!
        await Effect.runPromise(
          client.txn({
            compare: [],
            success: txn.map((i) => ({ op: "put" as const, key: keyOf(i), value: valueFor(i) })),
          }),
        )
      }
    }
    await Promise.all(Array.from({ length: 16 }, worker))
    const lastTxn = txns.at(-1)!
    await Effect.runPromise(
      client.txn({
        compare: [],
        success: lastTxn.map((i) => ({ op: "put" as const, key: keyOf(i), value: valueFor(i) })),
      }),
    )
    console.log(
      `filled ${keyCount.toLocaleString("en-US")} keys in ${((performance.now() - filled) / 1000).toFixed(0)} s`,
    )
    const { value: leader } = await timeUntil(
      "leader status",
      async () => (await Promise.all(replicas.map(status))).find((s) => s.role === "leader"),
      30_000,
      pollMs,
    )
    const { value: all } = await timeUntil(
      "every replica applied",
      async () => {
        const statuses = await Promise.all(replicas.map(status))
        return statuses.every((s) => s.appliedIndex >= leader.commitIndex) ? statuses : undefined
      },
      120_000,
      pollMs,
    )
    return { controllers, replicas, target: leader.commitIndex, snapshotIndexes: all.map((s) => s.snapshotIndex) }
  } finally {
    // As a crash: a replica stopped by a signal would snapshot its tail first.
    await Promise.all(processes.map((p) => p.kill()))
  }
}

cleanUpOnExit()
const fillDir = options.reuse ?? makeTempDir("kv-shard-restart-fill")
const fillRecord = join(fillDir, "fill.json")
let record: Fill
if (existsSync(fillRecord)) record = (await Bun.file(fillRecord).json()) as Fill
else {
  record = await fill(fillDir)
  await Bun.write(fillRecord, JSON.stringify(record))
}
console.log(
  `group ${GID}: ${keyCount.toLocaleString("en-US")} keys of ${valueBytes} B, committed through ${record.target}, snapshots at ${record.snapshotIndexes.join(", ")}`,
)

const lastKey = keyOf(keyCount - 1)
for (let run = 0; run < Number(options.runs); run++) {
  for (const command of servers) {
    const dir = makeTempDir("kv-shard-restart")
    let processes: Started[] = []
    try {
      cpSync(fillDir, dir, { recursive: true })
      processes = startControllers(dir, record.controllers)
      const admin = await Effect.runPromise(
        makeControllerClient(rpc, { controllers: record.controllers, deadlineMs: 30_000 }),
      )
      await Effect.runPromise(admin.query(-1))
      const load = loadavg()[0]!
      const t0 = performance.now()
      const group = startGroup(dir, command, "group")
      processes = [...processes, ...group]
      const ms = () => Math.round(performance.now() - t0)
      const firstAnswer: string[] = ["", "", ""]
      let leaderSeen = 0
      let leaderApplied = 0
      await timeUntil(
        "a leader with everything applied",
        async () => {
          const statuses = await Promise.all(record.replicas.map((a) => status(a).catch(() => undefined)))
          statuses.forEach((s, k) => {
            if (s !== undefined && firstAnswer[k] === "") firstAnswer[k] = `${ms()} ms (applied ${s.appliedIndex})`
          })
          const leader = statuses.find((s) => s?.role === "leader")
          if (leader !== undefined && leaderSeen === 0) leaderSeen = ms()
          if (leader !== undefined && leader.appliedIndex >= record.target) {
            leaderApplied = ms()
            return true
          }
          return undefined
        },
        120_000,
        pollMs,
      )
      const client = await Effect.runPromise(
        makeShardKvClient(rpc, { controllers: record.controllers, deadlineMs: 60_000 }),
      )
      const value = await Effect.runPromise(client.get(lastKey))
      const served = ms()
      if (value !== valueFor(keyCount - 1)) throw new Error(`restartGroup: read ${JSON.stringify(value)}`)
      const cpu = group.map((p) => cpuSecondsOf(p.pid).toFixed(2))
      console.log(
        `${command.at(-1)} run ${run + 1}: first answers ${firstAnswer.join(", ")}; leader known ${leaderSeen} ms, ` +
          `everything applied ${leaderApplied} ms, get ${served} ms; CPU ${cpu.join(", ")} s (load average ${load.toFixed(2)})`,
      )
    } finally {
      for (const p of processes) p.kill()
      await stop(processes, 5_000)
      removeTempDir(dir)
    }
  }
}
if (options.reuse === undefined) removeTempDir(fillDir)
await close()
