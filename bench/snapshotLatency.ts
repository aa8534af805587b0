/**
 * Put latency while replicas take a snapshot of a large store (`bun bench/snapshotLatency.ts
 * --reuse DIR`): restarts a copy of a `bench:restart --reuse` directory (a filled three-replica
 * kvraft group) with `maxRaftStateBytes` set a little above what its replicas' logs hold, so that
 * each replica takes a snapshot of its ~1M keys after about `--margin-bytes` of new log; one client
 * puts values of 100 B one after another for `--seconds`, while every replica's status is polled.
 * A put counts as "during a snapshot" when it overlaps the time from a replica's log passing the
 * threshold until its snapshot index moves (taking, writing and compacting); the others are the
 * baseline. Prints the latency quantiles of both and the snapshots seen.
 *
 * Options: --reuse DIR (required), --exe PATH (a packaged kvraft executable instead of the sources),
 * --seconds S (default 40), --margin-bytes B (default 1 MiB).
 */
import { cpSync, readFileSync, writeFileSync } from "node:fs"
import { loadavg } from "node:os"
import { dirname, join } from "node:path"
import { parseArgs } from "node:util"
import { KvStatusMethod, makeKvClient } from "@kv/kvraft"
import { Effect } from "effect"
import { cleanUpOnExit, makeTempDir, type Started, start, stop } from "./lib/processes.ts"
import { openRpcNode } from "./lib/rpc.ts"
import { repoRoot } from "./targets/target.ts"

const { values: options } = parseArgs({
  options: {
    reuse: { type: "string" },
    exe: { type: "string" },
    seconds: { type: "string", default: "40" },
    "margin-bytes": { type: "string", default: String(1 << 20) },
  },
})
if (options.reuse === undefined) throw new Error("usage: snapshotLatency.ts --reuse DIR [--exe PATH] [--seconds S]")
const command = options.exe !== undefined ? [options.exe] : ["bun", join(repoRoot, "packages/kvraft/bin/kvraft.ts")]
const seconds = Number(options.seconds)
const marginBytes = Number(options["margin-bytes"])

interface Window {
  from: number
  to: number
}

const quantiles = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b)
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN
  return { count: xs.length, p50: q(0.5), p99: q(0.99), max: sorted[sorted.length - 1] ?? Number.NaN }
}

const main = async () => {
  cleanUpOnExit()
  const loadBefore = loadavg()[0]!
  const dir = makeTempDir("kv-bench-snapshot-latency")
  cpSync(options.reuse!, dir, { recursive: true })
  const config = join(dir, "cluster.toml")
  const fill = JSON.parse(readFileSync(join(dir, "fill.json"), "utf8")) as { replicas: string[] }
  const replicas = fill.replicas
  const { rpc, close } = await openRpcNode()
  const status = (k: number) => Effect.runPromise(rpc.call(replicas[k]!, KvStatusMethod, {}, { deadlineMs: 300 }))
  let processes: Started[] = []
  const launch = () =>
    replicas.map((_, k) =>
      start(`latency-replica-${k}`, [...command, "--replica", String(k), "--config", config], { cwd: dirname(config) }),
    )
  try {
    // Learn how much log each replica holds once started, then restart with the threshold just above it.
    writeFileSync(config, readFileSync(config, "utf8").replace(/maxRaftStateBytes = \d+/, "maxRaftStateBytes = 0"))
    processes = launch()
    const settled = async () => {
      for (let attempt = 0; attempt < 6000; attempt++) {
        const all = await Promise.all(replicas.map((_, k) => status(k).catch(() => undefined)))
        const leader = all.find((s) => s?.role === "leader")
        if (leader !== undefined && all.every((s) => s !== undefined && s.appliedIndex >= leader.commitIndex))
          return all
        await Bun.sleep(20)
      }
      throw new Error("snapshot latency bench: the group did not settle")
    }
    const before = await settled()
    await stop(processes, 5_000)
    const threshold = Math.max(...before.map((s) => s!.raftStateBytes)) + marginBytes
    writeFileSync(
      config,
      readFileSync(config, "utf8").replace(/maxRaftStateBytes = \d+/, `maxRaftStateBytes = ${threshold}`),
    )
    processes = launch()
    const ready = await settled()
    const snapshotAtStart = ready.map((s) => s!.snapshotIndex)

    const client = await Effect.runPromise(makeKvClient(rpc, { servers: replicas, deadlineMs: 30_000 }))
    const windows: Window[] = []
    const open: (number | undefined)[] = [undefined, undefined, undefined]
    const lastSnapshot = [...snapshotAtStart]
    let polling = true
    const poller = (async () => {
      while (polling) {
        const now = performance.now()
        const all = await Promise.all(replicas.map((_, k) => status(k).catch(() => undefined)))
        all.forEach((s, k) => {
          if (s === undefined) return
          if (open[k] === undefined && s.raftStateBytes >= threshold) open[k] = now
          if (s.snapshotIndex > lastSnapshot[k]!) {
            lastSnapshot[k] = s.snapshotIndex
            windows.push({ from: open[k] ?? now, to: performance.now() })
            open[k] = undefined
          }
        })
        await Bun.sleep(10)
      }
    })()
    const puts: { from: number; to: number }[] = []
    const value = "v".repeat(100)
    const until = performance.now() + seconds * 1000
    for (let i = 0; performance.now() < until; i++) {
      const from = performance.now()
      await Effect.runPromise(client.put(`latency${String(i).padStart(8, "0")}`, value))
      puts.push({ from, to: performance.now() })
    }
    polling = false
    await poller
    const now = performance.now()
    for (const from of open) if (from !== undefined) windows.push({ from, to: now })
    const during: number[] = []
    const outside: number[] = []
    for (const put of puts) {
      const overlaps = windows.some((w) => put.from < w.to && put.to > w.from)
      ;(overlaps ? during : outside).push(put.to - put.from)
    }
    const f = (q: ReturnType<typeof quantiles>) =>
      `${q.count} puts, p50 ${q.p50.toFixed(2)} ms, p99 ${q.p99.toFixed(2)} ms, max ${q.max.toFixed(1)} ms`
    console.log(
      `snapshot latency: ${command.join(" ")}, threshold ${threshold} bytes, ${seconds} s, load average ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after`,
    )
    console.log(
      `  snapshots: ${windows.length} (from the log passing the threshold to the snapshot index moving: ${windows
        .map((w) => `${((w.to - w.from) / 1000).toFixed(2)} s`)
        .join(", ")})`,
    )
    console.log(`  during a snapshot: ${f(quantiles(during))}`)
    console.log(`  otherwise:         ${f(quantiles(outside))}`)
  } finally {
    await stop(processes, 5_000)
    await close()
  }
}

await main()
