/**
 * `bun run bench`: kv against etcd on this machine. For each target (the kvraft group; etcd when an
 * `etcd` binary is on the PATH; the sharded cluster with 1 and 3 groups once @kv/shardkv has its
 * binary and client) it starts a real local cluster (separate processes, loopback, file storage
 * with fsync), drives it from a separate load process through every cell of the matrix, reads the
 * CPU of every process over each measured window, then stops everything it started.
 * Writes results.json and results.md (in --out, default a new temporary directory) and prints
 * the markdown. The options are in cli.ts (`bun run bench --help`). A coordination cell whose
 * check fails (a counter that does not hold its acknowledged increments, a wrong listing, a watcher
 * that missed, repeated or reordered a write of its prefix) is reported and makes the run exit with
 * status 1, after the results are written.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os"
import { join } from "node:path"
import { parseBenchArgs, UsageError, usage } from "./cli.ts"
import { pooledLatency } from "./lib/latency.ts"
import { cleanUpOnExit, cpuSecondsOf, type Started, start, stop } from "./lib/processes.ts"
import { conflictRate, datagramsPerOp, type RunRecord, renderMarkdown, unfinishedNote } from "./lib/report.ts"
import type { LoadWindowMessage } from "./load.ts"
import {
  type Cell,
  type CellResult,
  cellsOf,
  describeCell,
  type FromLoad,
  type FsyncFigures,
  type Matrix,
  type ToLoad,
} from "./plan.ts"
import { etcdTarget } from "./targets/etcd.ts"
import { kvraftTarget } from "./targets/kvraft.ts"
import { shardkvTarget } from "./targets/shardkv.ts"
import { type RunningTarget, repoRoot, type ServerCounters, type Target } from "./targets/target.ts"

const parsed = (() => {
  const argv = process.argv.slice(2)
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usage)
    process.exit(0)
  }
  try {
    return parseBenchArgs(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    console.error(error.message)
    console.error(usage)
    process.exit(2)
  }
})()
const { matrix, keys, rounds } = parsed
const matrixFor = (target: Target): Matrix => (target.name.startsWith("shardkv") ? parsed.shardedMatrix : matrix)
/** The repository's cluster.toml sets the snapshot threshold, so the figures are what a user's cluster does. */
const defaultMaxRaftStateBytes = (): number => {
  try {
    const toml = Bun.TOML.parse(readFileSync(join(repoRoot, "cluster.toml"), "utf8")) as { maxRaftStateBytes?: unknown }
    return typeof toml.maxRaftStateBytes === "number" ? toml.maxRaftStateBytes : 1024 * 1024
  } catch {
    return 1024 * 1024
  }
}
const maxRaftStateBytes = parsed.maxRaftStateBytes ?? defaultMaxRaftStateBytes()

const allTargets: Target[] = [
  kvraftTarget({ maxRaftStateBytes }),
  ...(parsed.lossRate === undefined
    ? []
    : [kvraftTarget({ maxRaftStateBytes, faults: { lossRate: parsed.lossRate } })]),
  ...(parsed.dupRate === undefined ? [] : [kvraftTarget({ maxRaftStateBytes, faults: { dupRate: parsed.dupRate } })]),
  etcdTarget(),
  shardkvTarget({ groups: 1, maxRaftStateBytes }),
  shardkvTarget({ groups: 3, maxRaftStateBytes }),
  shardkvTarget({ groups: 3, maxRaftStateBytes, hosts: true }),
  shardkvTarget({ groups: 3, maxRaftStateBytes, hosts: true, sharedWal: true }),
  shardkvTarget({ groups: 3, maxRaftStateBytes, hosts: true, sharedWal: true, sharedSocket: true }),
  shardkvTarget({
    groups: 3,
    maxRaftStateBytes,
    hosts: true,
    sharedWal: true,
    sharedSocket: true,
    oneLeaderHost: true,
  }),
]
/** Run only when named: the same three groups laid out as on three machines. */
const namedOnly = (t: Target): boolean => t.name.includes("-hosts")
const chosen = parsed.targets
for (const name of chosen ?? []) {
  if (!allTargets.some((t) => t.name === name)) {
    console.error(`unknown target ${name}; targets: ${allTargets.map((t) => t.name).join(", ")}`)
    process.exit(2)
  }
}
// Naming kvraft with --loss or --dup brings its lossy runs along.
const targets =
  chosen === undefined
    ? allTargets.filter((t) => !namedOnly(t))
    : allTargets.filter((t) => chosen.includes(t.name) || (chosen.includes("kvraft") && t.name.startsWith("kvraft-")))

const git = (...args: string[]) =>
  Bun.spawnSync(["git", ...args], { cwd: repoRoot, stdout: "pipe", stderr: "ignore" })
    .stdout.toString()
    .trim()

/** Drives one started target through `cells` from a fresh load process. */
const drive = async (
  target: RunningTarget,
  matrix: Matrix,
  cells: readonly Cell[],
  onResult: (result: CellResult) => void,
): Promise<void> => {
  const cpuAt = new Map<number, number[]>()
  const windowCpu = new Map<number, Record<string, number>>()
  const countersAt = new Map<number, Promise<Record<string, ServerCounters>>>()
  const windowFsync = new Map<number, Promise<Record<string, FsyncFigures>>>()
  const pids = () => target.processes.map((p) => p.pid)
  // Results are reported in order once their (asynchronous) fsync samples are in.
  let reported: Promise<void> = Promise.resolve()
  let settle: { resolve: () => void; reject: (error: Error) => void } | undefined
  const finished = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject }
  })
  const sampleServerCounters = () => target.serverCounters?.() ?? Promise.resolve({})
  const onMessage = (message: FromLoad | LoadWindowMessage) => {
    switch (message.type) {
      case "measuring":
        cpuAt.set(message.index, pids().map(cpuSecondsOf))
        countersAt.set(message.index, sampleServerCounters())
        return
      case "measured": {
        const before = cpuAt.get(message.index) ?? []
        const seconds = cells[message.index]!.seconds
        const cpu: Record<string, number> = {}
        target.processes.forEach((p, k) => {
          cpu[p.name] = (cpuSecondsOf(p.pid) - (before[k] ?? Number.NaN)) / seconds
        })
        windowCpu.set(message.index, cpu)
        const countersBefore = countersAt.get(message.index) ?? Promise.resolve({})
        windowFsync.set(
          message.index,
          Promise.all([countersBefore, sampleServerCounters()]).then(([a, b]) => fsyncFigures(a, b, seconds)),
        )
        return
      }
      case "cell": {
        const index = message.index
        reported = reported.then(async () => {
          const fsync = await (windowFsync.get(index) ?? Promise.resolve({})).catch(() => ({}))
          onResult({
            ...message.figures,
            cell: cells[index]!,
            cpu: { ...windowCpu.get(index), load: message.loadCpu },
            ...(Object.keys(fsync).length === 0 ? {} : { fsync }),
            ...(message.verdict === undefined ? {} : { verdict: message.verdict }),
            ...(message.watch === undefined ? {} : { watch: message.watch }),
          })
        })
        return
      }
      case "done":
        void reported.then(() => settle?.resolve())
        return
      case "failed":
        settle?.reject(new Error(`load process failed: ${message.message}`))
        return
    }
  }
  const load: Started = start("load", ["bun", join(import.meta.dir, "load.ts")], {
    ipc: (message) => onMessage(message as FromLoad | LoadWindowMessage),
    ...(target.loadEnv === undefined ? {} : { env: target.loadEnv }),
  })
  void load.exited.then((code) => {
    if (code !== 0) settle?.reject(new Error(`load process exited with ${code}:\n${load.output()}`))
  })
  load.send({
    type: "run",
    client: target.client,
    cells,
    keys,
    targetWarmupSeconds: matrix.targetWarmupSeconds,
  } satisfies ToLoad)
  try {
    await finished
    // It exits on its own after "done" (writing its CPU profile if asked); a stuck one is stopped.
    await Promise.race([load.exited, Bun.sleep(5_000)])
  } finally {
    await stop([load])
  }
}

/** fsyncs per second and their mean duration over a window, per server process. */
const fsyncFigures = (
  before: Record<string, ServerCounters>,
  after: Record<string, ServerCounters>,
  seconds: number,
): Record<string, FsyncFigures> => {
  const figures: Record<string, FsyncFigures> = {}
  for (const [name, b] of Object.entries(after)) {
    const a = before[name]
    if (a === undefined) continue
    const count = b.count - a.count
    figures[name] = {
      perSecond: count / seconds,
      meanMs: count > 0 ? ((b.seconds - a.seconds) / count) * 1000 : 0,
      datagramsPerSecond: (b.datagramsSent - a.datagramsSent) / seconds,
    }
  }
  return figures
}

/**
 * Per cell, the round with the median ops/s (the lower middle one for an even count); with several
 * rounds it also carries the percentiles of all of them together.
 */
const medianRounds = (lists: readonly CellResult[][]): CellResult[] =>
  (lists[0] ?? []).map((_, index) => {
    const rounds = lists.map((list) => list[index]).filter((r): r is CellResult => r !== undefined)
    const median = [...rounds].sort((a, b) => a.opsPerSecond - b.opsPerSecond)[Math.floor((rounds.length - 1) / 2)]!
    if (rounds.length < 2) return median
    return { ...median, pooled: pooledLatency(rounds.map((r) => r.histogram ?? [])) }
  })

const fmt = (r: CellResult) => {
  const cpu = Object.entries(r.cpu)
    .map(([name, cores]) => `${name} ${cores.toFixed(2)}`)
    .join(", ")
  const fsync = Object.entries(r.fsync ?? {})
    .map(([name, f]) => `${name} ${Math.round(f.perSecond)}/s ${f.meanMs.toFixed(2)} ms`)
    .join(", ")
  const datagrams = datagramsPerOp(r)
  const conflicts =
    r.conditionalWrites > 0 ? `  conflicts ${conflictRate(r)} of ${r.conditionalWrites} conditional writes` : ""
  const unfinished = unfinishedNote(r)
  const verdict =
    r.verdict === undefined ? "" : `\n      ${r.verdict.ok ? "check ok" : "CHECK FAILED"}: ${r.verdict.summary}`
  const watch =
    r.watch === undefined
      ? ""
      : `\n      watch: ${r.watch.writesPerSecond} writes/s${r.watch.writeErrors > 0 ? ` (${r.watch.writeErrors} failed)` : ""} to ${r.watch.prefixes} prefixes, ${r.opsPerSecond} events/s to ${r.watch.watchers} watchers; delivery ms from the answer above, from the send p50 ${r.watch.fromSendP50Ms.toFixed(2)} p99 ${r.watch.fromSendP99Ms.toFixed(2)}`
  return `${String(r.opsPerSecond).padStart(7)} ops/s  p50 ${r.p50Ms.toFixed(2)}  p99 ${r.p99Ms.toFixed(2)}  p999 ${r.p999Ms.toFixed(2)} ms${r.errors > 0 ? `  ${r.errors} errors` : ""}${conflicts}  cpu: ${cpu}${fsync === "" ? "" : `  fsync: ${fsync}`}${datagrams === undefined ? "" : `  datagrams/op ${datagrams.toFixed(2)}`}${unfinished === "" ? "" : `\n      ${unfinished}`}${watch}${verdict}`
}

const main = async () => {
  cleanUpOnExit()
  const out = parsed.out ?? mkdtempSync(join(tmpdir(), "kv-bench-results-"))
  mkdirSync(out, { recursive: true })
  const skipped: Record<string, string> = {}
  const runnable = targets.filter((t) => {
    const why = t.unavailable()
    if (why !== undefined) skipped[t.name] = why
    return why === undefined
  })
  const plans = runnable.map((target) => ({ target, matrix: matrixFor(target), cells: cellsOf(matrixFor(target)) }))
  const estimate = Math.round(
    plans.reduce(
      (sum, p) => sum + p.cells.length * (p.matrix.warmupSeconds + p.matrix.seconds) + p.matrix.targetWarmupSeconds + 3,
      0,
    ),
  )
  console.log(
    `kv benchmark: ${plans.map((p) => `${p.target.name} (${p.cells.length} cells)`).join(", ")}; ${matrix.warmupSeconds} s warm-up + ${matrix.seconds} s per cell; about ${estimate} s`,
  )
  for (const [name, why] of Object.entries(skipped)) console.log(`  skipping ${name}: ${why}`)
  const loadBefore = loadavg()[0] ?? 0
  if (loadBefore > cpus().length * 0.5) {
    console.log(
      `  note: load average ${loadBefore.toFixed(2)} on ${cpus().length} cores: other work will skew the figures`,
    )
  }
  const results: Record<string, CellResult[]> = {}
  let done = 0
  const total = rounds * plans.reduce((sum, p) => sum + p.cells.length, 0)
  const byRound: Record<string, CellResult[][]> = {}
  for (let round = 1; round <= rounds; round++)
    for (const { target, matrix: targetMatrix, cells } of plans) {
      process.stdout.write(`starting ${target.name}${rounds > 1 ? ` (round ${round}/${rounds})` : ""} ... `)
      const startedAt = performance.now()
      const running = await target.start()
      console.log(`up in ${((performance.now() - startedAt) / 1000).toFixed(1)} s`)
      const list: CellResult[] = []
      byRound[target.name] = [...(byRound[target.name] ?? []), list]
      try {
        await drive(running, targetMatrix, cells, (r) => {
          list.push(r)
          done++
          console.log(
            `[${String(done).padStart(3)}/${total}] ${target.name.padEnd(9)} ${describeCell(r.cell)}  ${fmt(r)}`,
          )
        })
      } catch (error) {
        for (const p of running.processes) {
          if (!p.running) {
            console.error(`--- ${p.name} exited (${await p.exited}):\n${p.output()}`)
          }
        }
        throw error
      } finally {
        await running.stop()
      }
    }
  for (const [name, lists] of Object.entries(byRound)) results[name] = medianRounds(lists)
  const dirty = git("status", "--porcelain") === "" ? "" : " (with uncommitted changes)"
  const cpu = cpus()[0]?.model ?? "unknown CPU"
  const record: RunRecord = {
    date: new Date().toISOString(),
    commit: `${git("rev-parse", "--short", "HEAD")}${dirty}`,
    machine: `${cpus().length} cores (${cpu}), ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, Bun ${Bun.version}`,
    command: `bun run bench ${process.argv.slice(2).join(" ")}`.trim(),
    settings: `kv maxRaftStateBytes ${maxRaftStateBytes.toLocaleString("en-US")}, ${keys.toLocaleString("en-US")} keys${rounds > 1 ? `, median of ${rounds} alternating rounds per cell (by ops/s)` : ""}`,
    loadAverage: { before: loadBefore, after: loadavg()[0] ?? 0 },
    targets: results,
    skipped,
  }
  const markdown = renderMarkdown(record)
  writeFileSync(
    join(out, "results.json"),
    `${JSON.stringify({ ...record, matrix, keys, ...(rounds > 1 ? { rounds: byRound } : {}) }, null, 2)}\n`,
  )
  writeFileSync(join(out, "results.md"), `${markdown}\n`)
  console.log(`\n${markdown}`)
  console.log(`written: ${join(out, "results.json")}, ${join(out, "results.md")}`)
  // Every round counts here, not only the medians: one lost update anywhere is a broken store.
  const failed = Object.entries(byRound).flatMap(([name, lists]) =>
    lists.flatMap((list, round) =>
      list
        .filter((r) => r.verdict?.ok === false)
        .map((r) => `${name} round ${round + 1} ${describeCell(r.cell).replace(/ +/g, " ")}: ${r.verdict?.summary}`),
    ),
  )
  if (failed.length > 0) {
    console.error(`\nCHECK FAILED in ${failed.length} cell(s):\n${failed.map((f) => `  ${f}`).join("\n")}`)
    return 1
  }
  return 0
}

process.exit(await main())
