/** The markdown rendering of a run: figures side by side per target, CPU per process, and the goals. */
import {
  type Cell,
  type CellResult,
  cellSize,
  describeCell,
  isCoordination,
  type LatencyFigures,
  type Workload,
  writeRateText,
} from "../plan.ts"

export interface RunRecord {
  readonly date: string
  readonly commit: string
  readonly machine: string
  readonly command: string
  /** What the clusters were configured with (snapshot threshold, key count). */
  readonly settings: string
  /** 1-minute load average before and after: other work on the machine skews every figure. */
  readonly loadAverage: { readonly before: number; readonly after: number }
  readonly targets: Readonly<Record<string, readonly CellResult[]>>
  readonly skipped: Readonly<Record<string, string>>
}

const int = (n: number) => Math.round(n).toLocaleString("en-US")
const ms = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2))
const size = (bytes: number) => (bytes >= 1024 ? `${bytes / 1024} KiB` : `${bytes} B`)

const find = (
  results: readonly CellResult[] | undefined,
  workload: Workload,
  concurrency: number,
  valueBytes: number,
) =>
  results?.find(
    (r) => r.cell.workload === workload && r.cell.concurrency === concurrency && r.cell.valueBytes === valueBytes,
  )

const fsyncs = (r: CellResult) =>
  Object.values(r.fsync ?? {})
    .map((f) => `${int(f.perSecond)} (${f.meanMs.toFixed(2)})`)
    .join(" / ")
/**
 * fsyncs of every server over the measured window per operation in it (each server's count from its
 * /metrics, kv_raft_fsync_seconds); undefined without fsync figures or operations.
 */
export const fsyncsPerOp = (r: CellResult): number | undefined => {
  const servers = Object.values(r.fsync ?? {})
  if (servers.length === 0 || !(r.opsPerSecond > 0)) return undefined
  return servers.reduce((sum, f) => sum + f.perSecond, 0) / r.opsPerSecond
}
/** Datagrams every server sent over the measured window per operation in it; undefined without figures. */
export const datagramsPerOp = (r: CellResult): number | undefined => {
  const servers = Object.values(r.fsync ?? {})
  if (servers.length === 0 || !(r.opsPerSecond > 0) || servers.some((f) => f.datagramsPerSecond === undefined)) {
    return undefined
  }
  return servers.reduce((sum, f) => sum + (f.datagramsPerSecond ?? 0), 0) / r.opsPerSecond
}
const datagramsPerOpText = (r: CellResult) => {
  const perOp = datagramsPerOp(r)
  return perOp === undefined ? "" : perOp >= 10 ? perOp.toFixed(1) : perOp.toFixed(2)
}
const fsyncsPerOpText = (r: CellResult) => {
  const perOp = fsyncsPerOp(r)
  return perOp === undefined ? "" : perOp >= 10 ? perOp.toFixed(1) : perOp.toFixed(3)
}
const latencies = (r: CellResult | undefined) =>
  r === undefined ? "" : `${ms(r.p50Ms)} / ${ms(r.p99Ms)} / ${ms(r.p999Ms)}`
const throughput = (r: CellResult | undefined) =>
  r === undefined ? "" : `${int(r.opsPerSecond)}${r.errors > 0 ? ` (${r.errors} err)` : ""}`

export const renderMarkdown = (run: RunRecord): string => {
  const lines: string[] = []
  const kv = run.targets.kvraft
  const etcd = run.targets.etcd
  const sharded = Object.keys(run.targets).filter((t) => t.startsWith("shardkv"))
  /** kvraft under injected loss or duplication (--loss, --dup), each beside the lossless figure. */
  const lossy = Object.keys(run.targets).filter((t) => t.startsWith("kvraft-"))
  const all = kv ?? etcd ?? Object.values(run.targets)[0] ?? []
  const base = all.filter((r) => !isCoordination(r.cell.workload))

  lines.push(`Run ${run.date}, commit ${run.commit}, \`${run.command}\`.`)
  lines.push(
    `Machine: ${run.machine}; 1-min load average ${run.loadAverage.before.toFixed(2)} before, ${run.loadAverage.after.toFixed(2)} after.`,
  )
  lines.push(`Settings: ${run.settings}.`)
  for (const [target, why] of Object.entries(run.skipped)) lines.push(`Skipped ${target}: ${why}.`)
  lines.push("")

  for (const valueBytes of [...new Set(base.map((r) => r.cell.valueBytes))]) {
    lines.push(`#### ${size(valueBytes)} values (ops/s; latency p50 / p99 / p999 ms)`, "")
    const header = ["workload", "conc"]
    if (kv !== undefined) header.push("kvraft ops/s", "kvraft ms")
    if (etcd !== undefined) header.push("etcd ops/s", "etcd ms", "kv / etcd")
    for (const t of lossy) header.push(`${t} ops/s`, `${t} ms`, `${t} / kvraft`)
    for (const t of sharded) header.push(`${t} ops/s`, `${t} ms`)
    lines.push(`| ${header.join(" | ")} |`, `|${header.map((_, i) => (i < 2 ? "---" : "---:")).join("|")}|`)
    for (const r of base.filter((x) => x.cell.valueBytes === valueBytes)) {
      const { workload, concurrency } = r.cell
      const k = find(kv, workload, concurrency, valueBytes)
      const row = [workload, String(concurrency)]
      if (kv !== undefined) row.push(throughput(k), latencies(k))
      if (etcd !== undefined) {
        const e = find(etcd, workload, concurrency, valueBytes)
        const ratio =
          k !== undefined && e !== undefined && e.opsPerSecond > 0 ? k.opsPerSecond / e.opsPerSecond : undefined
        row.push(throughput(e), latencies(e), ratio === undefined ? "" : `${ratio.toFixed(2)}×`)
      }
      for (const t of lossy) {
        const l = find(run.targets[t], workload, concurrency, valueBytes)
        const ratio =
          k !== undefined && l !== undefined && k.opsPerSecond > 0 ? l.opsPerSecond / k.opsPerSecond : undefined
        row.push(throughput(l), latencies(l), ratio === undefined ? "" : `${ratio.toFixed(2)}×`)
      }
      for (const t of sharded) {
        const s = find(run.targets[t], workload, concurrency, valueBytes)
        row.push(throughput(s), latencies(s))
      }
      lines.push(`| ${row.join(" | ")} |`)
    }
    lines.push("")
  }

  const coordination = all.filter((r) => isCoordination(r.cell.workload) && r.cell.workload !== "watch")
  if (coordination.length > 0)
    lines.push(
      ...renderCoordination(
        run,
        coordination.map((r) => r.cell),
      ),
      "",
    )
  const watches = all.filter((r) => r.cell.workload === "watch")
  if (watches.length > 0)
    lines.push(
      ...renderWatch(
        run,
        watches.map((r) => r.cell),
      ),
      "",
    )

  lines.push(
    "#### CPU (cores busy over the measured window, per process; CPU time per operation), fsyncs and datagrams",
    "",
    "| target | cell | servers (cores) | load (cores) | servers µs/op | load µs/op | fsyncs/op (all servers) | datagrams/op (all servers) | fsyncs/s (mean ms) per server |",
    "|---|---|---|---:|---:|---:|---:|---:|---|",
  )
  for (const [target, results] of Object.entries(run.targets)) {
    for (const r of results) {
      const servers = Object.entries(r.cpu).filter(([name]) => name !== "load")
      const serverCores = servers.reduce((sum, [, cores]) => sum + cores, 0)
      const load = r.cpu.load ?? Number.NaN
      const perOp = (cores: number) => (r.opsPerSecond > 0 ? int((cores / r.opsPerSecond) * 1e6) : "")
      lines.push(
        `| ${target} | ${describeCell(r.cell).replace(/ +/g, " ")} | ${servers.map(([, c]) => c.toFixed(2)).join(" / ")} | ${load.toFixed(2)} | ${perOp(serverCores)} | ${perOp(load)} | ${fsyncsPerOpText(r)} | ${datagramsPerOpText(r)} | ${fsyncs(r)} |`,
      )
    }
  }
  lines.push("")

  const pooled = renderPooled(run.targets)
  if (pooled.length > 0) lines.push(...pooled, "")
  const goals = kv !== undefined && etcd !== undefined ? renderGoals(kv, etcd) : []
  if (goals.length > 0) lines.push(...goals, "")
  const groupGoals = renderGroupGoals(run.targets)
  if (groupGoals.length > 0) lines.push(...groupGoals, "")
  return lines.join("\n")
}

const sameCell = (a: Cell, b: Cell) =>
  a.workload === b.workload &&
  a.concurrency === b.concurrency &&
  a.valueBytes === b.valueBytes &&
  a.counters === b.counters &&
  a.watchers === b.watchers &&
  a.writeRate === b.writeRate

/** The share of conditional writes answered in the window that found the counter changed. */
export const conflictRate = (r: LatencyFigures): string =>
  r.conditionalWrites === 0 ? "" : `${((100 * r.conflicts) / r.conditionalWrites).toFixed(1)}%`

/** Increments still retrying when the cell ended: starved workers, which the latency percentiles cannot show. */
export const unfinishedNote = (r: LatencyFigures): string =>
  r.unfinished === 0
    ? ""
    : `${r.unfinished} increment${r.unfinished === 1 ? " was" : "s were"} still retrying when the cell ended, the oldest for ${(r.oldestUnfinishedMs / 1000).toFixed(1)} s`

/**
 * cas-incr (successful increments/s, latency of a successful increment from its first read, the
 * share of conditional writes that found the counter changed) and list100 (listings/s), every
 * target side by side, then what each cell's check found.
 */
const renderCoordination = (run: RunRecord, cells: readonly Cell[]): string[] => {
  const names = Object.keys(run.targets)
  const header = ["workload", "conc", "keys"]
  for (const t of names) header.push(`${t} ops/s`, `${t} ms p50 / p99`, `${t} conflicts`)
  const ratio = run.targets.kvraft !== undefined && run.targets.etcd !== undefined
  if (ratio) header.push("kv / etcd")
  const lines = [
    "#### Coordination (cas-incr: successful increments/s, latency of an increment with its retries, conditional writes that conflicted; list100: listings of 100 keys/s)",
    "",
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i < 3 ? "---" : "---:")).join("|")}|`,
  ]
  const checks: string[] = []
  for (const cell of cells) {
    const row = [
      cell.workload,
      String(cell.concurrency),
      cell.workload === "cas-incr" ? String(cell.counters ?? 1) : "100 of 10,000",
    ]
    const found: Record<string, CellResult | undefined> = {}
    for (const t of names) {
      const r = run.targets[t]?.find((x) => sameCell(x.cell, cell))
      found[t] = r
      row.push(
        throughput(r),
        r === undefined ? "" : `${ms(r.p50Ms)} / ${ms(r.p99Ms)}`,
        r === undefined ? "" : conflictRate(r),
      )
      if (r?.verdict !== undefined)
        checks.push(
          `- ${t}, ${cell.workload} ${cellSize(cell)}: ${r.verdict.ok ? "ok" : "**FAILED**"}, ${r.verdict.summary}`,
        )
    }
    if (ratio) {
      const k = found.kvraft
      const e = found.etcd
      row.push(
        k !== undefined && e !== undefined && e.opsPerSecond > 0
          ? `${(k.opsPerSecond / e.opsPerSecond).toFixed(2)}×`
          : "",
      )
    }
    lines.push(`| ${row.join(" | ")} |`)
  }
  if (checks.length > 0) lines.push("", "Checks after each cell (the median round's):", "", ...checks)
  return lines
}

/**
 * watch: per target, writes/s answered, events/s delivered over all watchers, and delivery latency
 * from the put's answer (p50 / p99; negative when the event came first) and from its send; the
 * kv / etcd ratio of events/s; then what each cell's check found.
 */
const renderWatch = (run: RunRecord, cells: readonly Cell[]): string[] => {
  const names = Object.keys(run.targets)
  const header = ["writers", "write rate", "watchers"]
  for (const t of names)
    header.push(`${t} writes/s`, `${t} events/s`, `${t} ms p50 / p99 from answer`, `${t} ms p50 / p99 from send`)
  const ratio = run.targets.kvraft !== undefined && run.targets.etcd !== undefined
  if (ratio) header.push("kv / etcd events/s")
  const lines = [
    "#### Watch (events delivered/s over all watchers; delivery latency from the put's answer at the writer, and from its send)",
    "",
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i < 3 ? "---" : "---:")).join("|")}|`,
  ]
  const checks: string[] = []
  for (const cell of cells) {
    const row = [String(cell.concurrency), writeRateText(cell.writeRate ?? 0), int(cell.watchers ?? 0)]
    const found: Record<string, CellResult | undefined> = {}
    for (const t of names) {
      const r = run.targets[t]?.find((x) => sameCell(x.cell, cell))
      found[t] = r
      const w = r?.watch
      row.push(
        w === undefined ? "" : `${int(w.writesPerSecond)}${w.writeErrors > 0 ? ` (${w.writeErrors} err)` : ""}`,
        r === undefined ? "" : int(r.opsPerSecond),
        r === undefined ? "" : `${ms(r.p50Ms)} / ${ms(r.p99Ms)}`,
        w === undefined ? "" : `${ms(w.fromSendP50Ms)} / ${ms(w.fromSendP99Ms)}`,
      )
      if (r?.verdict !== undefined)
        checks.push(`- ${t}, watch ${cellSize(cell)}: ${r.verdict.ok ? "ok" : "**FAILED**"}, ${r.verdict.summary}`)
    }
    if (ratio) {
      const k = found.kvraft
      const e = found.etcd
      row.push(
        k !== undefined && e !== undefined && e.opsPerSecond > 0
          ? `${(k.opsPerSecond / e.opsPerSecond).toFixed(2)}×`
          : "",
      )
    }
    lines.push(`| ${row.join(" | ")} |`)
  }
  if (checks.length > 0) lines.push("", "Checks after each cell (the median round's):", "", ...checks)
  return lines
}

/** With several rounds: every cell's percentiles over all its rounds' operations. */
const renderPooled = (targets: Readonly<Record<string, readonly CellResult[]>>): string[] => {
  const rows = Object.entries(targets).flatMap(([target, results]) =>
    results.flatMap((r) =>
      r.pooled === undefined
        ? []
        : [
            `| ${target} | ${describeCell(r.cell).replace(/ +/g, " ")} | ${r.pooled.rounds} | ${int(r.pooled.ops)} | ${ms(r.pooled.p50Ms)} / ${ms(r.pooled.p99Ms)} / ${ms(r.pooled.p999Ms)} |`,
          ],
    ),
  )
  if (rows.length === 0) return []
  return [
    "#### Latency over all rounds (every measured operation of every round; ms p50 / p99 / p999, within 1%)",
    "",
    "| target | cell | rounds | operations | ms |",
    "|---|---|---:|---:|---|",
    ...rows,
  ]
}

/**
 * The goals of issue 18 (issue 8's, raised), checked against this run's etcd: both measured on the
 * same machine in the same run.
 */
const renderGoals = (kv: readonly CellResult[], etcd: readonly CellResult[]): string[] => {
  const lines = ["#### Goals (this run)", "", "| goal | kvraft | etcd | met |", "|---|---:|---:|---|"]
  const row = (
    label: string,
    k: CellResult | undefined,
    e: CellResult | undefined,
    check: (k: CellResult, e: CellResult) => [string, string, boolean],
  ) => {
    if (k === undefined || e === undefined) return
    const [kText, eText, met] = check(k, e)
    lines.push(`| ${label} | ${kText} | ${eText} | ${met ? "yes" : "no"} |`)
  }
  const atLeast =
    (times: number) =>
    (k: CellResult, e: CellResult): [string, string, boolean] => [
      `${int(k.opsPerSecond)} (${(k.opsPerSecond / e.opsPerSecond).toFixed(2)}×)`,
      int(e.opsPerSecond),
      k.opsPerSecond >= times * e.opsPerSecond,
    ]
  const sequentialPut = [find(kv, "put", 1, 100), find(etcd, "put", 1, 100)] as const
  row("put, 1 client, ≥ etcd ops/s", ...sequentialPut, atLeast(1))
  // One round's p99 moves by a fifth between rounds: with several, every round's operations count.
  const [kPooled, ePooled] = [sequentialPut[0]?.pooled, sequentialPut[1]?.pooled]
  const pooled = kPooled !== undefined && ePooled !== undefined
  row(
    pooled ? `put, 1 client, p99 ≤ etcd's (all ${kPooled.rounds} rounds)` : "put, 1 client, p99 ≤ etcd's",
    ...sequentialPut,
    (k, e) => {
      const [kp99, ep99] = pooled ? [kPooled.p99Ms, ePooled.p99Ms] : [k.p99Ms, e.p99Ms]
      return [`${ms(kp99)} ms`, `${ms(ep99)} ms`, kp99 <= ep99]
    },
  )
  row("put, 64 concurrent, ≥ 3× etcd ops/s", find(kv, "put", 64, 100), find(etcd, "put", 64, 100), atLeast(3))
  row("get, 64 concurrent, ≥ 6× etcd ops/s", find(kv, "get", 64, 100), find(etcd, "get", 64, 100), atLeast(6))
  // A run without the goals' cells (only coordination workloads, say) has no goals table.
  return lines.length > 4 ? lines : []
}

/**
 * Issue 18's goal for several groups per machine: three groups laid out as on three machines
 * (process k serving replica k of each, the `shardkv-3-hosts*` targets) serve at least as much as
 * one group, cell by cell of the same run.
 */
const renderGroupGoals = (targets: Readonly<Record<string, readonly CellResult[]>>): string[] => {
  const one = targets["shardkv-1"]
  if (one === undefined) return []
  const lines = [
    "#### Three groups per process against one group (this run)",
    "",
    "| layout | cell | ops/s | shardkv-1 ops/s | met (≥ 1×) |",
    "|---|---|---:|---:|---|",
  ]
  for (const [target, results] of Object.entries(targets)) {
    if (!target.startsWith("shardkv-3-hosts")) continue
    for (const r of results) {
      const base = find(one, r.cell.workload, r.cell.concurrency, r.cell.valueBytes)
      if (base === undefined || base.opsPerSecond <= 0) continue
      lines.push(
        `| ${target} | ${describeCell(r.cell).replace(/ +/g, " ")} | ${int(r.opsPerSecond)} (${(r.opsPerSecond / base.opsPerSecond).toFixed(2)}×) | ${int(base.opsPerSecond)} | ${r.opsPerSecond >= base.opsPerSecond ? "yes" : "no"} |`,
      )
    }
  }
  return lines.length > 4 ? lines : []
}
