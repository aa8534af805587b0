/**
 * The kvraft group: three `kvraft --replica k` processes over UDP on 127.0.0.1, each with its own
 * data directory (file storage, fdatasync per Raft batch), started from a temporary cluster.toml.
 */
import { join } from "node:path"
import { KvStatusMethod } from "@kv/kvraft"
import { Effect } from "effect"
import { freeTcpPorts, freeUdpPorts, makeTempDir, removeTempDir, type Started, start, stop } from "../lib/processes.ts"
import { openRpcNode } from "../lib/rpc.ts"
import { type RunningTarget, repoRoot, STOP_GRACE_MS, serverCountersOf, type Target, waitFor } from "./target.ts"

const BIN = join(repoRoot, "packages/kvraft/bin/kvraft.ts")

/**
 * `faults` runs the same group with that fraction of datagrams dropped or duplicated inside every
 * transport (servers' and the load process's, through KV_NET_LOSS / KV_NET_DUP), named for it.
 */
export const kvraftTarget = (options: {
  readonly maxRaftStateBytes: number
  readonly faults?: { readonly lossRate?: number; readonly dupRate?: number }
}): Target => {
  const env: Record<string, string> = {}
  const suffix: string[] = []
  if (options.faults?.lossRate !== undefined) {
    env.KV_NET_LOSS = String(options.faults.lossRate)
    suffix.push(`-loss${+(options.faults.lossRate * 100).toFixed(3)}%`)
  }
  if (options.faults?.dupRate !== undefined) {
    env.KV_NET_DUP = String(options.faults.dupRate)
    suffix.push(`-dup${+(options.faults.dupRate * 100).toFixed(3)}%`)
  }
  const name = `kvraft${suffix.join("")}`
  return {
    name,
    unavailable: () => undefined,
    async start(): Promise<RunningTarget> {
      const dir = makeTempDir("kv-bench-kvraft")
      const replicas = (await freeUdpPorts(3)).map((p) => `127.0.0.1:${p}`)
      const config = join(dir, "cluster.toml")
      await Bun.write(
        config,
        `dataDir = "./data"\nmaxRaftStateBytes = ${options.maxRaftStateBytes}\n[kvraft]\nreplicas = ${JSON.stringify(replicas)}\n`,
      )
      const metricsPorts = await freeTcpPorts(3)
      const processes: Started[] = replicas.map((_, k) =>
        start(
          `replica-${k}`,
          ["bun", BIN, "--replica", String(k), "--config", config, "--metrics-port", String(metricsPorts[k])],
          { cwd: dir, env },
        ),
      )
      const stopAll = async () => {
        await stop(processes, STOP_GRACE_MS)
        removeTempDir(dir)
      }
      const { rpc, close } = await openRpcNode()
      try {
        await waitFor("a kvraft leader", async () => {
          const statuses = await Promise.all(
            replicas.map((r) =>
              Effect.runPromise(rpc.call(r, KvStatusMethod, {}, { deadlineMs: 500 }).pipe(Effect.option)),
            ),
          )
          return (
            statuses.every((s) => s._tag === "Some") &&
            statuses.some((s) => s._tag === "Some" && s.value.role === "leader")
          )
        })
      } catch (error) {
        for (const p of processes) console.error(`--- ${p.name}\n${p.output()}`)
        await stopAll()
        throw error
      } finally {
        await close()
      }
      const serverCounters = serverCountersOf(
        metricsPorts.map((metricsPort, k) => ({ name: `replica-${k}`, metricsPort })),
      )
      return {
        name,
        client: { kind: "kvraft", servers: replicas },
        processes,
        stop: stopAll,
        serverCounters,
        loadEnv: env,
      }
    },
  }
}
