/**
 * A timeline of one follower's restart, measured from outside (case (a) of `bun run bench:restart`):
 * the group of a `bench:restart --reuse DIR` fill is started from a copy of DIR, a follower is
 * stopped and started again, and its status is polled every few ms until it serves as a member
 * (a voter following a leader, everything the leader had committed applied). Printed, with the
 * ms since its exec and its CPU seconds then (the main thread's, and all threads': the JIT's and
 * the garbage collector's helper threads run beside it): its first status answer, its snapshot
 * applied, the restored tail applied, a leader known, serving; its applied index every 100 ms;
 * when its snapshot index moves (a snapshot it took since). Several runs, one process each.
 *
 *   bun packages/kvraft/bench/restartTimeline.ts --reuse DIR [--exe PATH] [--runs N]
 */
import { cpSync, readdirSync, readFileSync } from "node:fs"
import { loadavg } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { KvStatusMethod } from "@kv/kvraft"
import { Effect } from "effect"
import {
  cleanUpOnExit,
  cpuSecondsOf,
  makeTempDir,
  removeTempDir,
  type Started,
  start,
  stop,
} from "../../../bench/lib/processes.ts"
import { openRpcNode } from "../../../bench/lib/rpc.ts"

const { values: options } = parseArgs({
  options: {
    reuse: { type: "string" },
    exe: { type: "string" },
    runs: { type: "string", default: "3" },
    "poll-ms": { type: "string", default: "5" },
    "settle-ms": { type: "string", default: "3000" },
  },
})
if (options.reuse === undefined) throw new Error("usage: restartTimeline.ts --reuse DIR [--exe PATH] [--runs N]")
const BIN = join(import.meta.dir, "../bin/kvraft.ts")
const command: readonly string[] = options.exe !== undefined ? [options.exe] : ["bun", BIN]
const pollMs = Number(options["poll-ms"])
/** How long the restarted group runs before a follower is rolled (0: at once, as bench:restart does after (b)). */
const settleMs = Number(options["settle-ms"])

/** CPU seconds of a process's main thread (its pid's task). NaN once gone. */
const mainThreadCpu = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return Number.NaN
  }
}

/** Threads of a process by name with their CPU seconds, busiest first. */
const threadCpu = (pid: number): string => {
  const byName = new Map<string, number>()
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8")
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      const cpu = (Number(fields[11]) + Number(fields[12])) / 100
      byName.set(name, (byName.get(name) ?? 0) + cpu)
    }
  } catch {
    return "gone"
  }
  return [...byName]
    .filter(([, cpu]) => cpu > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([name, cpu]) => `${name} ${cpu.toFixed(2)}`)
    .join(", ")
}

const main = async () => {
  cleanUpOnExit()
  const fill = JSON.parse(readFileSync(join(options.reuse!, "fill.json"), "utf8")) as { replicas: string[] }
  const { rpc, close } = await openRpcNode()
  const status = (k: number, deadlineMs = 300) =>
    Effect.runPromise(rpc.call(fill.replicas[k]!, KvStatusMethod, {}, { deadlineMs }))
  const until = async <A>(what: string, probe: () => Promise<A | undefined>, timeoutMs: number): Promise<A> => {
    const started = performance.now()
    while (performance.now() - started < timeoutMs) {
      const value = await probe().catch(() => undefined)
      if (value !== undefined) return value
      await Bun.sleep(pollMs)
    }
    throw new Error(`restart timeline: no ${what} within ${timeoutMs} ms`)
  }
  for (let run = 1; run <= Number(options.runs); run++) {
    const dir = makeTempDir("kv-restart-timeline")
    let processes: Started[] = []
    try {
      cpSync(options.reuse!, dir, { recursive: true })
      const config = join(dir, "cluster.toml")
      const launch = (k: number) =>
        start(`timeline-${k}`, [...command, "--replica", String(k), "--config", config], { cwd: dir })
      processes = [0, 1, 2].map(launch)
      const all = await until(
        "leader with everything applied",
        async () => {
          const s = await Promise.all([0, 1, 2].map((k) => status(k)))
          const leader = s.find((x) => x.role === "leader")
          return leader !== undefined && s.every((x) => x.appliedIndex >= leader.commitIndex) ? s : undefined
        },
        120_000,
      )
      const groupUp = performance.now()
      const cpuAtUp = processes.map((p) => cpuSecondsOf(p.pid))
      const before = all.map(
        (x) =>
          `${x.role} snapshot ${x.snapshotIndex} last ${x.lastIndex} state ${(x.raftStateBytes / 2 ** 20).toFixed(1)} MiB`,
      )
      // The others settle (their own restart's snapshots) before the measured one is rolled.
      await Bun.sleep(settleMs)
      const settled = await Promise.all([0, 1, 2].map((k) => status(k)))
      console.log(
        `group up: ${before.join("; ")}\n  after ${((performance.now() - groupUp) / 1000).toFixed(1)} s: ${settled
          .map(
            (x, k) =>
              `snapshot ${x.snapshotIndex} state ${(x.raftStateBytes / 2 ** 20).toFixed(1)} MiB cpu +${(cpuSecondsOf(processes[k]!.pid) - cpuAtUp[k]!).toFixed(2)} s`,
          )
          .join("; ")}`,
      )
      // The follower with the longest log after its snapshot: the most to replay.
      const follower = all.reduce(
        (best, x, k) => (x.role !== "leader" && (best < 0 || x.raftStateBytes > all[best]!.raftStateBytes) ? k : best),
        -1,
      )
      const leader = all.findIndex((x) => x.role === "leader")
      await stop([processes[follower]!], 5_000)
      const committed = await until("leader's commit", async () => (await status(leader)).commitIndex, 30_000)
      const load = loadavg()[0]!
      const execAt = performance.now()
      const execClock = Date.now()
      const rolled = launch(follower)
      processes[follower] = rolled
      const lines: string[] = []
      const mark = (what: string) => {
        const ms = performance.now() - execAt
        lines.push(
          `  ${ms.toFixed(0).padStart(5)} ms  cpu main ${mainThreadCpu(rolled.pid).toFixed(2)} all ${cpuSecondsOf(rolled.pid).toFixed(2)} s  ${what}`,
        )
      }
      let firstAnswer = false
      let snapshotIndexAtStart = -1
      let tailApplied = false
      let leaderKnown = false
      let lastProgress = 0
      for (;;) {
        if (performance.now() - execAt > 60_000) throw new Error("restart timeline: not serving within 60 s")
        const st = await status(follower, 50).catch(() => undefined)
        if (st !== undefined) {
          if (!firstAnswer) {
            firstAnswer = true
            snapshotIndexAtStart = st.snapshotIndex
            mark(
              `first status: applied ${st.appliedIndex}, commit ${st.commitIndex}, snapshot ${st.snapshotIndex}, last ${st.lastIndex}, state ${(st.raftStateBytes / 2 ** 20).toFixed(1)} MiB, leader ${st.leader}`,
            )
          }
          if (!tailApplied && st.appliedIndex >= st.lastIndex) {
            tailApplied = true
            mark(`applied its whole log: ${st.appliedIndex}`)
          }
          if (!leaderKnown && st.leader !== 0) {
            leaderKnown = true
            mark(`leader known: ${st.leader}, term ${st.term}, commit ${st.commitIndex}, applied ${st.appliedIndex}`)
          }
          if (st.snapshotIndex !== snapshotIndexAtStart && snapshotIndexAtStart >= 0) {
            mark(`snapshot index moved: ${snapshotIndexAtStart} -> ${st.snapshotIndex}`)
            snapshotIndexAtStart = st.snapshotIndex
          }
          if (performance.now() - lastProgress >= 100) {
            lastProgress = performance.now()
            mark(`applied ${st.appliedIndex} of ${committed}`)
          }
          if (st.role === "follower" && st.member === "voter" && st.leader !== 0 && st.appliedIndex >= committed) {
            mark("serving")
            break
          }
        }
        await Bun.sleep(pollMs)
      }
      const servedAt = performance.now()
      // What follows serving: a snapshot begun during the restart runs on.
      while (performance.now() - servedAt < 4_000) {
        const st = await status(follower, 50).catch(() => undefined)
        if (st !== undefined && st.snapshotIndex !== snapshotIndexAtStart) {
          mark(`snapshot index moved: ${snapshotIndexAtStart} -> ${st.snapshotIndex}`)
          snapshotIndexAtStart = st.snapshotIndex
        }
        await Bun.sleep(20)
      }
      mark(`threads: ${threadCpu(rolled.pid)}`)
      console.log(`run ${run} (replica ${follower}, load average ${load.toFixed(2)}):\n${lines.join("\n")}`)
      // Its log lines' timestamps as ms since its exec: the disk check done, the replica started.
      for (const line of rolled.output().split("\n")) {
        const at = /timestamp=(\S+)/.exec(line)?.[1]
        const message = /message="([^"]*)"/.exec(line)?.[1]
        if (at !== undefined && message !== undefined)
          console.log(`  ${String(Date.parse(at) - execClock).padStart(5)} ms  log: ${message}`)
      }
    } catch (error) {
      for (const p of processes) console.error(`--- ${p.name}\n${p.output()}`)
      throw error
    } finally {
      await stop(processes, 2_000)
      removeTempDir(dir)
    }
  }
  await close()
}

await main()
