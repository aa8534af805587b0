/**
 * Restart to serving with a large store (`bun run bench:restart`): a three-replica kvraft group
 * on loopback is filled with N keys of V bytes (default 1,000,000 of 100 B) through transactions
 * of puts, so each replica holds a snapshot and a tail of log; then every replica is killed (kill -9,
 * as a crash: a replica stopped by a signal snapshots a long tail first) and
 *   1. the phases of a restart are timed in a fresh process on replica 0's data directory
 *      (packages/kvraft/bench/restorePhases.ts): opening the storage (snapshot file read and
 *      checked, WAL replayed), unwrapping, restoring the state machine, decoding the tail;
 *   2. replica 0 alone is started and timed until its status answers with the snapshot applied;
 *   3. serving, case (b), the group back after a crash: all three are started at once and timed
 *      until a linearizable get of the last key written answers (elections, a leader's first
 *      commit, ReadIndex included), with each replica's CPU seconds to that point: three replicas
 *      share this machine's cores, while one replica per host waits about its own CPU time;
 *   4. serving, case (a), a rolling restart: with the group running, the follower with the longest
 *      log after its snapshot is stopped (SIGTERM, timed: it may finish a snapshot first) and started
 *      again, and timed until it answers as
 *      a member (its status: a voter, following the leader in the leader's term, everything the
 *      leader had committed applied), with its CPU seconds;
 *   5. case (a'), a crashed host back while the others run on hosts of their own: the same replica,
 *      from its data as the fill left it, started once the other two have settled (their logs under
 *      the budget, so no snapshot of their own restart shares these cores with it), timed the same
 *      way. Their restarts' snapshots covered the whole log, so the leader holds none of the entries
 *      it lacks and sends its snapshot instead (said in the output);
 *   6. case (c), a graceful restart of the group: started from the fill's data and settled, written
 *      to until every replica's log holds more than half the budget past its snapshot, stopped with
 *      SIGTERM (timed: each replica snapshots that tail before it exits) and started again, timed
 *      until a linearizable get answers.
 * It also times starting the server process alone (`--version`: the runtime and module loading).
 *
 * Options: --keys N, --value-bytes V, --max-raft-state-bytes B (default: the servers' own, 16 MiB), --concurrency C,
 * --reuse DIR (fill once into DIR and keep it; later runs with the same DIR restart a copy of it
 * instead of filling, on the same ports: the replicas' addresses are in their logs),
 * --exe PATH (restart the replicas with a packaged kvraft executable, `bun run build`'s
 * dist/bin/kv-kvraft, instead of `bun packages/kvraft/bin/kvraft.ts`; the fill always uses the latter).
 * Set KV_BENCH_PROFILE=<dir> for CPU profiles (markdown) of every process.
 */
import { cpSync, existsSync, readdirSync, rmSync, statSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { dirname, join, resolve } from "node:path"
import { parseArgs } from "node:util"
import { DEFAULT_MAX_RAFT_STATE_BYTES, KvStatusMethod, makeKvClient } from "@kv/kvraft"
import type { RpcNodeShape } from "@kv/rpc"
import { Effect } from "effect"
import { timeUntil } from "./lib/poll.ts"
import {
  cleanUpOnExit,
  cpuSecondsOf,
  freeUdpPorts,
  makeTempDir,
  removeTempDir,
  type Started,
  start,
  stop,
} from "./lib/processes.ts"
import { openRpcNode } from "./lib/rpc.ts"
import { repoRoot } from "./targets/target.ts"

const BIN = join(repoRoot, "packages/kvraft/bin/kvraft.ts")
const PHASES = join(repoRoot, "packages/kvraft/bench/restorePhases.ts")
const KEYS_PER_TXN = 100

const USAGE = `usage: bun run bench:restart [--keys N] [--value-bytes V] [--max-raft-state-bytes B] [--concurrency C]
                             [--reuse DIR] [--exe PATH]
Fills a three-replica kvraft group on 127.0.0.1 (default 1,000,000 keys of 100 B), stops it, then
times a restart's phases, one replica to its snapshot applied, the whole group to a linearizable get
(b), and one follower restarted while the others run (a), with CPU seconds per replica.
  --max-raft-state-bytes B   the fill's snapshot threshold (default ${DEFAULT_MAX_RAFT_STATE_BYTES}, the servers' own)
  --reuse DIR                fill once into DIR and keep it; later runs restart a copy of it
  --exe PATH                 restart with a packaged executable (bun run build: dist/bin/kv-kvraft)
  KV_BENCH_PROFILE=DIR       CPU profiles (markdown) of every process`

const { values: options } = parseArgs({
  options: {
    keys: { type: "string", default: "1000000" },
    "value-bytes": { type: "string", default: "100" },
    "max-raft-state-bytes": { type: "string", default: String(DEFAULT_MAX_RAFT_STATE_BYTES) },
    concurrency: { type: "string", default: "16" },
    reuse: { type: "string" },
    exe: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
})
if (options.help === true) {
  console.log(USAGE)
  process.exit(0)
}
const keyCount = Number(options.keys)
const valueBytes = Number(options["value-bytes"])
const maxRaftStateBytes = Number(options["max-raft-state-bytes"])
const concurrency = Number(options.concurrency)
const reuseDir = options.reuse
/** How a restarted replica's process is started (the fill always runs from source). */
// Absolute: the replicas start in their own directories.
const serverCommand: readonly string[] = options.exe !== undefined ? [resolve(options.exe)] : ["bun", BIN]

/** What a --reuse directory records of its fill besides the data. */
interface FillRecord {
  readonly replicas: string[]
  readonly target: number
  readonly fillSeconds: number
  /** Each transaction's latency during the fill, ms: p50, p99, max (a snapshot pauses a replica's event loop). */
  readonly txnMs?: { readonly p50: number; readonly p99: number; readonly max: number }
  /** The leader's term once filled: above 1, the group changed leader while filling. */
  readonly term?: number
}

/** What packages/kvraft/bench/restorePhases.ts prints. */
interface RestorePhases {
  readonly snapshotIndex: number
  readonly snapshotBytes: number
  readonly keys: number
  readonly tailEntries: number
  readonly tailCommands: number
  readonly diskCheck: { ms: number; cpuMs: number }
  readonly openStorage: { ms: number; cpuMs: number }
  readonly unwrap: { ms: number; cpuMs: number }
  readonly restore: { ms: number; cpuMs: number }
  readonly decodeTail: { ms: number; cpuMs: number }
  readonly applyTail: { ms: number; cpuMs: number }
  readonly nextSnapshotBytes: number
  readonly takeSnapshot: { ms: number; cpuMs: number }
  readonly writeSnapshot: { ms: number; cpuMs: number }
}

const keyOf = (i: number) => `key${String(i).padStart(8, "0")}`
const valueFor = (i: number) => String(i).padStart(valueBytes, "v")

const dirBytes = (dir: string, match: (name: string) => boolean): number =>
  readdirSync(dir)
    .filter(match)
    .reduce((sum, name) => sum + statSync(join(dir, name)).size, 0)

const launchReplica = (config: string, k: number, phase: string, command: readonly string[] = ["bun", BIN]) =>
  start(`${phase}-replica-${k}`, [...command, "--replica", String(k), "--config", config], { cwd: dirname(config) })

/** Wall and CPU seconds of the server process started with `--version`: the runtime and module loading; medians of 5. */
const processStart = (command: readonly string[]): { wall: number; cpu: number } => {
  const runs = Array.from({ length: 5 }, () => {
    const started = performance.now()
    const run = Bun.spawnSync([...command, "--version"], { stdout: "ignore", stderr: "ignore" })
    return {
      wall: (performance.now() - started) / 1000,
      cpu: Number(run.resourceUsage?.cpuTime.total ?? Number.NaN) / 1e6,
    }
  })
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[2]!
  return { wall: median(runs.map((r) => r.wall)), cpu: median(runs.map((r) => r.cpu)) }
}

/** Starts a group in the directory of `config`, fills it, waits until every replica applied everything, kills it. */
const fillGroup = async (
  config: string,
  rpc: RpcNodeShape,
  track: (processes: Started[]) => void,
): Promise<FillRecord> => {
  const replicas = (await freeUdpPorts(3)).map((p) => `127.0.0.1:${p}`)
  await Bun.write(
    config,
    `dataDir = "./data"\nmaxRaftStateBytes = ${maxRaftStateBytes}\n[kvraft]\nreplicas = ${JSON.stringify(replicas)}\n`,
  )
  const status = (k: number) => Effect.runPromise(rpc.call(replicas[k]!, KvStatusMethod, {}, { deadlineMs: 300 }))
  const processes = replicas.map((_, k) => launchReplica(config, k, "fill"))
  track(processes)
  await timeUntil("leader", async () => ((await status(0)).leader > 0 ? true : undefined), 60_000)
  const client = await Effect.runPromise(makeKvClient(rpc, { servers: replicas, deadlineMs: 120_000 }))
  const fillStarted = performance.now()
  let next = 0
  let done = 0
  const latencies: number[] = []
  const worker = async () => {
    for (;;) {
      const first = next
      if (first >= keyCount) return
      next = Math.min(keyCount, first + KEYS_PER_TXN)
      const success = []
      for (let i = first; i < next; i++) success.push({ op: "put" as const, key: keyOf(i), value: valueFor(i) })
      const sent = performance.now()
      await Effect.runPromise(client.txn({ compare: [], success }))
      latencies.push(performance.now() - sent)
      done += success.length
      if (Math.floor(done / (keyCount / 10)) !== Math.floor((done - success.length) / (keyCount / 10))) {
        console.error(
          `filled ${done.toLocaleString("en-US")} keys (${((performance.now() - fillStarted) / 1000).toFixed(0)} s)`,
        )
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const fillSeconds = (performance.now() - fillStarted) / 1000
  latencies.sort((a, b) => a - b)
  const quantile = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
  const txnMs = { p50: quantile(0.5), p99: quantile(0.99), max: latencies[latencies.length - 1] ?? 0 }
  // Every replica applied everything before the stop, so each restart has the same work.
  const { commitIndex: target, term } = (
    await timeUntil(
      "leader status",
      async () => {
        for (let k = 0; k < 3; k++) {
          const s = await status(k).catch(() => undefined)
          if (s?.role === "leader") return s
        }
        return undefined
      },
      30_000,
    )
  ).value
  await timeUntil(
    "every replica applied",
    async () => {
      const all = await Promise.all([0, 1, 2].map(status))
      return all.every((s) => s.appliedIndex >= target) ? all : undefined
    },
    120_000,
  )
  // As a crash: a replica stopped by a signal would snapshot its tail first (a graceful stop is case (c)).
  await Promise.all(processes.map((p) => p.kill()))
  track([])
  return { replicas, target, fillSeconds, txnMs, term }
}

const main = async () => {
  cleanUpOnExit()
  const loadBefore = loadavg()[0]!
  const dir = makeTempDir("kv-bench-restart")
  const { rpc, close } = await openRpcNode()
  let processes: Started[] = []
  try {
    const config = join(dir, "cluster.toml")
    const reused = reuseDir !== undefined && existsSync(join(reuseDir, "fill.json"))
    if (reused) cpSync(reuseDir, dir, { recursive: true })
    const fill: FillRecord = reused
      ? ((await Bun.file(join(dir, "fill.json")).json()) as FillRecord)
      : await fillGroup(config, rpc, (started) => {
          processes = started
        })
    if (!reused && reuseDir !== undefined) {
      cpSync(dir, reuseDir, { recursive: true })
      await Bun.write(join(reuseDir, "fill.json"), JSON.stringify(fill))
    }
    // The data as the fill left it, for case (a'): the reused directory, or a copy.
    const pristineData = reuseDir !== undefined ? join(reuseDir, "data") : join(dir, "pristine-data")
    if (reuseDir === undefined) cpSync(join(dir, "data"), pristineData, { recursive: true })
    const budget = Number(
      /maxRaftStateBytes\s*=\s*(\d+)/.exec(await Bun.file(config).text())?.[1] ?? DEFAULT_MAX_RAFT_STATE_BYTES,
    )
    const { replicas, target, fillSeconds, txnMs, term } = fill
    const launch = (k: number, phase: string) => launchReplica(config, k, phase, serverCommand)
    const started = processStart(serverCommand)
    const status = (k: number) => Effect.runPromise(rpc.call(replicas[k]!, KvStatusMethod, {}, { deadlineMs: 300 }))

    // 1. Phases, in a fresh process (as a restarting server's heap is), on replica 0's directory.
    const data0 = join(dir, "data", "kvraft", "replica-0")
    const snapshotBytes = dirBytes(data0, (n) => n.includes("snap"))
    const walBytes = dirBytes(data0, (n) => !n.includes("snap"))
    const phasesRun = await Bun.$`bun ${PHASES} ${data0}`.quiet()
    const phases = JSON.parse(phasesRun.stdout.toString()) as RestorePhases
    if (phases.snapshotIndex === 0)
      throw new Error("restart bench: replica 0 took no snapshot; lower --max-raft-state-bytes")

    // 2. One replica alone, until its status shows the snapshot applied.
    const lone = launch(0, "alone")
    processes = [lone]
    const alone = await timeUntil(
      "status with the snapshot applied from replica 0",
      async () => ((await status(0)).appliedIndex >= phases.snapshotIndex ? true : undefined),
      120_000,
    )
    // Killed, as the fill's replicas were: a replica stopped by a signal finishes its replay and
    // snapshots the tail, which would leave case (b) a replica 0 with nothing to replay.
    await Promise.all(processes.map((p) => p.kill()))
    processes = []

    // 3. The group: until a leader is known (status), then until a client's linearizable get answers.
    // The client starts once a leader is known, so its retry backoff against replicas that were not
    // yet listening is not counted.
    const lastKey = keyCount - 1
    const groupStarted = performance.now()
    processes = replicas.map((_, k) => launch(k, "group"))
    const elected = await timeUntil(
      "leader after the restart",
      async () => {
        const all = await Promise.all([0, 1, 2].map((k) => status(k).catch(() => undefined)))
        return all.some((s) => s?.role === "leader" && s.appliedIndex >= target) ? true : undefined
      },
      120_000,
    )
    const reader = await Effect.runPromise(makeKvClient(rpc, { servers: replicas, deadlineMs: 120_000 }))
    const value = await Effect.runPromise(reader.get(keyOf(lastKey)))
    const serveMs = performance.now() - groupStarted
    const groupCpu = processes.map((p) => cpuSecondsOf(p.pid))
    if (value !== valueFor(lastKey)) throw new Error(`restart bench: read ${JSON.stringify(value)} after the restart`)

    // 4. A rolling restart: one follower stopped and started again while the others serve.
    // A status may miss its 300 ms deadline on a busy machine: asked again rather than failing the run.
    const { value: statuses } = await timeUntil(
      "every replica's status",
      () => Promise.all([0, 1, 2].map(status)),
      30_000,
    )
    const leaderStatus = statuses.find((st) => st.role === "leader")
    // The follower with the longest log after its snapshot (the most to replay): the replicas'
    // tails differ (each snapshots on its own), and one with a short tail serves in half the time.
    const follower = statuses.reduce(
      (best, st, k) =>
        st.role !== "leader" && (best < 0 || st.raftStateBytes > statuses[best]!.raftStateBytes) ? k : best,
      -1,
    )
    const followerLogBytes = statuses[follower]?.raftStateBytes ?? 0
    if (leaderStatus === undefined || follower < 0) throw new Error("restart bench: no leader and follower to roll")
    // A process manager's stop timeout, not a short grace: the replica may finish a snapshot first.
    const rollStopStarted = performance.now()
    await stop([processes[follower]!], 60_000)
    const rollStopMs = performance.now() - rollStopStarted
    const rolledWalBytes = dirBytes(join(dir, "data", "kvraft", `replica-${follower}`), (n) => n.startsWith("wal"))
    const leaderIndex = statuses.indexOf(leaderStatus)
    const { value: committed } = await timeUntil(
      "the leader's commit index",
      async () => (await status(leaderIndex)).commitIndex,
      30_000,
    )
    const rolled = launch(follower, "rolled")
    processes[follower] = rolled
    // Following a leader, not necessarily the one from before: on a busy machine the group may change
    // leader meanwhile (said in the output), and the follower then serves under the new one.
    let lastSeen: unknown
    const member = await timeUntil(
      "the restarted follower serving as a member",
      async () => {
        const st = await status(follower)
        lastSeen = st
        return st.role === "follower" && st.member === "voter" && st.leader !== 0 && st.appliedIndex >= committed
          ? st
          : undefined
      },
      120_000,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; its last status: ${JSON.stringify(lastSeen)}`)
    })
    const leaderChanged = member.value.term !== leaderStatus.term
    const rolledCpu = cpuSecondsOf(rolled.pid)
    await stop(processes, 5_000)
    processes = []

    // 5. (a'), a host back while the others run on hosts of their own: the same replica, from its data
    // as the fill left it, started once the other two have settled (a leader with everything applied,
    // each log under the budget: no snapshot of their own restart runs beside it on these cores).
    const replicaDir = join(dir, "data", "kvraft", `replica-${follower}`)
    rmSync(replicaDir, { recursive: true, force: true })
    cpSync(join(pristineData, "kvraft", `replica-${follower}`), replicaDir, { recursive: true })
    const others = [0, 1, 2].filter((k) => k !== follower)
    processes = others.map((k) => launch(k, "settled"))
    const { value: settled } = await timeUntil(
      "the other two settled",
      async () => {
        const st = await Promise.all(others.map(status))
        const leader = st.find((x) => x.role === "leader")
        return leader !== undefined &&
          st.every((x) => x.appliedIndex >= leader.commitIndex && x.raftStateBytes < budget)
          ? leader
          : undefined
      },
      60_000,
    )
    const back = launch(follower, "back")
    processes.push(back)
    const backMember = await timeUntil(
      "the replica back serving as a member",
      async () => {
        const st = await status(follower)
        return st.role === "follower" &&
          st.member === "voter" &&
          st.leader !== 0 &&
          st.appliedIndex >= settled.commitIndex
          ? st
          : undefined
      },
      120_000,
    )
    const backCpu = cpuSecondsOf(back.pid)
    await stop(processes, 5_000)
    processes = []

    // 6. (c), a graceful restart: the group from the fill's data, settled, then written to until every
    // replica's log holds more than half the budget past its snapshot (what a restart would replay);
    // stopped with SIGTERM (each replica snapshots that tail first) and started again.
    rmSync(join(dir, "data"), { recursive: true, force: true })
    cpSync(pristineData, join(dir, "data"), { recursive: true })
    processes = replicas.map((_, k) => launch(k, "graceful"))
    await timeUntil(
      "the group settled",
      async () => {
        const st = await Promise.all([0, 1, 2].map(status))
        const leader = st.find((x) => x.role === "leader")
        return leader !== undefined &&
          st.every((x) => x.appliedIndex >= leader.commitIndex && x.raftStateBytes < budget / 4)
          ? true
          : undefined
      },
      60_000,
    )
    const writer = await Effect.runPromise(makeKvClient(rpc, { servers: replicas, deadlineMs: 60_000 }))
    let rewritten = 0
    const tails = async () => (await Promise.all([0, 1, 2].map(status))).map((x) => x.raftStateBytes)
    const tailed = await timeUntil(
      "a tail of half the budget on every replica",
      async () => {
        const bytes = await tails()
        if (bytes.every((b) => b > budget / 2)) return bytes
        // The fill's keys again, with their values: the store stays as filled.
        await Promise.all(
          Array.from({ length: 8 }, () => {
            const success = []
            for (let n = 0; n < KEYS_PER_TXN; n++, rewritten++) {
              const i = rewritten % keyCount
              success.push({ op: "put" as const, key: keyOf(i), value: valueFor(i) })
            }
            return Effect.runPromise(writer.txn({ compare: [], success }))
          }),
        )
        return undefined
      },
      120_000,
    )
    const stopStarted = performance.now()
    await stop(processes, 60_000)
    const gracefulStopMs = performance.now() - stopStarted
    const tailsAfterStop = [0, 1, 2].map((k) =>
      dirBytes(join(dir, "data", "kvraft", `replica-${k}`), (n) => n.startsWith("wal")),
    )
    const gracefulStarted = performance.now()
    processes = replicas.map((_, k) => launch(k, "graceful-again"))
    const again = await Effect.runPromise(makeKvClient(rpc, { servers: replicas, deadlineMs: 120_000 }))
    const readBack = await Effect.runPromise(again.get(keyOf(lastKey)))
    const gracefulServeMs = performance.now() - gracefulStarted
    const gracefulCpu = processes.map((p) => cpuSecondsOf(p.pid))
    if (readBack !== valueFor(lastKey)) throw new Error(`restart bench: read ${JSON.stringify(readBack)} in case (c)`)
    await stop(processes, 5_000)
    processes = []

    const loadAfter = loadavg()[0]!
    const commit = (await Bun.$`git -C ${repoRoot} rev-parse --short HEAD`.quiet().nothrow()).stdout.toString().trim()
    const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`
    const phase = (p: { ms: number; cpuMs: number }) => `${s(p.ms)} / ${s(p.cpuMs)}`
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0)} MiB`
    const cpu = (seconds: number) => `${seconds.toFixed(2)} s`
    console.log(
      [
        `restart: ${keyCount.toLocaleString("en-US")} keys of ${valueBytes} B, commit ${commit}, ${cpus().length} cores, load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after`,
        `  fill: ${reused ? `reused from ${reuseDir}, ` : ""}${fillSeconds.toFixed(0)} s (${Math.round(keyCount / fillSeconds).toLocaleString("en-US")} keys/s in transactions of ${KEYS_PER_TXN})` +
          (txnMs === undefined
            ? ""
            : `; transaction latency p50 ${txnMs.p50.toFixed(0)} ms, p99 ${txnMs.p99.toFixed(0)} ms, max ${txnMs.max.toFixed(0)} ms; leader's term at the end ${term}`),
        `  replica 0 on disk: snapshot file ${mib(snapshotBytes)} at index ${phases.snapshotIndex}, WAL ${mib(walBytes)} (${phases.tailEntries} entries after the snapshot, ${phases.tailCommands} of them commands)`,
        `  server process: ${serverCommand.join(" ")}; started with --version: ${s(started.wall * 1000)} / ${s(started.cpu * 1000)} (wall / CPU, median of 5)`,
        `  phases in a fresh process (wall / CPU): startup disk check ${phase(phases.diskCheck)}; open storage (read and check the snapshot, replay the WAL) ${phase(phases.openStorage)}; unwrap ${phase(phases.unwrap)}; restore the state machine (${phases.keys.toLocaleString("en-US")} keys) ${phase(phases.restore)}; decode the tail ${phase(phases.decodeTail)}; apply it ${phase(phases.applyTail)}`,
        `  the next snapshot (a running replica takes it on its event loop, wall / CPU): ${mib(phases.nextSnapshotBytes)}, taken ${phase(phases.takeSnapshot)}, written and fdatasynced ${phase(phases.writeSnapshot)}`,
        `  one replica, process start to snapshot applied: ${s(alone.ms)}`,
        `  (a) one follower restarted while the group runs (replica ${follower}, ${mib(followerLogBytes)} of log after its snapshot), stopped in ${s(rollStopMs)} leaving a WAL of ${mib(rolledWalBytes)}, to serving as a member: ${s(member.ms)}, ${cpu(rolledCpu)} of CPU${leaderChanged ? " (the group changed leader meanwhile)" : ""}`,
        `  (a') the same replica from its data as filled, back to the other two once they had settled (no snapshot of theirs running): ${s(backMember.ms)}, ${cpu(backCpu)} of CPU` +
          (backMember.value.snapshotIndex >= target
            ? `; the leader's log no longer held what it lacked: sent the leader's snapshot (index ${backMember.value.snapshotIndex})`
            : ""),
        `  (b) three replicas started at once after a crash (kill -9), to a leader with everything applied: ${s(elected.ms)}; to the first linearizable get: ${s(serveMs)}; CPU per replica to then: ${groupCpu.map(cpu).join(", ")}`,
        `  (c) a graceful restart: with ${tailed.value.map(mib).join(", ")} of log past their snapshots, the replicas stopped (SIGTERM) in ${s(gracefulStopMs)}, leaving WALs of ${tailsAfterStop.map(mib).join(", ")}; started again, to the first linearizable get: ${s(gracefulServeMs)}; CPU per replica to then: ${gracefulCpu.map(cpu).join(", ")}`,
      ].join("\n"),
    )
  } catch (error) {
    for (const p of processes) console.error(`--- ${p.name}\n${p.output()}`)
    throw error
  } finally {
    await stop(processes, 1_000)
    await close()
    removeTempDir(dir)
  }
}

await main()
