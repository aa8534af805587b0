/**
 * The sharded cluster: a 3-replica shard controller and `groups` replica groups of 3, all joined
 * before the run (UDP on 127.0.0.1, file storage). Every replica runs as its own process, or with
 * `hosts`, as on three machines: process k runs replica k of every group, in a data directory of its
 * own, with a write-ahead log per replica or, with `sharedWal`, one shared by its replicas.
 */
import { join } from "node:path"
import { makeControllerClient } from "@kv/shardctrler"
import { makeShardKvClient } from "@kv/shardkv"
import { Effect } from "effect"
import { freeTcpPorts, freeUdpPorts, makeTempDir, removeTempDir, type Started, start, stop } from "../lib/processes.ts"
import { openRpcNode } from "../lib/rpc.ts"
import { type RunningTarget, repoRoot, STOP_GRACE_MS, serverCountersOf, type Target, waitFor } from "./target.ts"

const CONTROLLER_BIN = join(repoRoot, "packages/shardctrler/bin/shardctrler.ts")
const SHARDKV_BIN = join(repoRoot, "packages/shardkv/bin/shardkv.ts")
const FIRST_GID = 100

export interface ShardkvTargetOptions {
  readonly groups: number
  readonly maxRaftStateBytes: number
  /** Three processes, each running replica k of every group (`--gid 100,101,... --replica k`). */
  readonly hosts?: boolean
  /** With `hosts`: each process keeps its replicas' logs in one shared write-ahead log (`--shared-wal`). */
  readonly sharedWal?: boolean
  /**
   * With `hosts` and `sharedWal`: replica k of every group has host k's one address, so each process
   * serves its groups on one socket (one datagram carries every group's messages to a peer host).
   */
  readonly sharedSocket?: boolean
  /**
   * With `sharedSocket`: every group prefers replica 0 as its leader (`preferredLeader = 0`), so
   * host 0 leads them all and the groups' batches travel together.
   */
  readonly oneLeaderHost?: boolean
}

export const shardkvTarget = (options: ShardkvTargetOptions): Target => {
  const layout = options.oneLeaderHost
    ? "-one-leader"
    : options.sharedSocket
      ? "-shared"
      : options.sharedWal
        ? "-shared-wal"
        : ""
  const name = `shardkv-${options.groups}${options.hosts ? `-hosts${layout}` : ""}`
  return {
    name,
    unavailable: () => undefined,
    async start(): Promise<RunningTarget> {
      const dir = makeTempDir(`kv-bench-${name}`)
      const ports = await freeUdpPorts(3 + 3 * options.groups)
      const address = (p: number | undefined) => `127.0.0.1:${p}`
      const controllers = ports.slice(0, 3).map(address)
      const groups = Array.from({ length: options.groups }, (_, g) => ({
        gid: FIRST_GID + g,
        replicas: ports.slice(options.sharedSocket ? 3 : 3 + 3 * g, options.sharedSocket ? 6 : 6 + 3 * g).map(address),
      }))
      const config = join(dir, "cluster.toml")
      await Bun.write(
        config,
        [
          `dataDir = "./data"`,
          `maxRaftStateBytes = ${options.maxRaftStateBytes}`,
          `[controller]`,
          `replicas = ${JSON.stringify(controllers)}`,
          ...groups.flatMap((g) => [
            `[groups.${g.gid}]`,
            `replicas = ${JSON.stringify(g.replicas)}`,
            ...(options.oneLeaderHost ? ["preferredLeader = 0"] : []),
          ]),
          "",
        ].join("\n"),
      )
      // One server process per replica, or per host (replica k of every group).
      const servers = options.hosts
        ? [0, 1, 2].map((k) => ({
            name: `host-${k}`,
            args: [
              "--gid",
              groups.map((g) => g.gid).join(","),
              "--replica",
              String(k),
              "--data",
              join(dir, `host-${k}`),
              ...(options.sharedWal ? ["--shared-wal"] : []),
            ],
          }))
        : groups.flatMap((g) =>
            g.replicas.map((_, k) => ({
              name: `g${g.gid}-${k}`,
              args: ["--gid", String(g.gid), "--replica", String(k)],
            })),
          )
      const metricsPorts = await freeTcpPorts(servers.length)
      const processes: Started[] = [
        ...controllers.map((_, k) =>
          start(`controller-${k}`, ["bun", CONTROLLER_BIN, "--replica", String(k), "--config", config], { cwd: dir }),
        ),
        ...servers.map((server, n) =>
          start(
            server.name,
            ["bun", SHARDKV_BIN, ...server.args, "--config", config, "--metrics-port", String(metricsPorts[n])],
            { cwd: dir },
          ),
        ),
      ]
      const stopAll = async () => {
        await stop(processes, STOP_GRACE_MS)
        removeTempDir(dir)
      }
      const { rpc, close } = await openRpcNode()
      try {
        const admin = await Effect.runPromise(makeControllerClient(rpc, { controllers, deadlineMs: 20_000 }))
        await Effect.runPromise(admin.join(Object.fromEntries(groups.map((g) => [String(g.gid), g.replicas]))))
        // Ready once writes go through to every shard's group (keys spread over all shards).
        const client = await Effect.runPromise(makeShardKvClient(rpc, { controllers }))
        await waitFor(`${name} serving every shard`, async () => {
          await Effect.runPromise(
            Effect.forEach(
              Array.from({ length: 64 }, (_, n) => `ready-${n}`),
              (key) => client.put(key, "x"),
              { concurrency: 16, discard: true },
            ).pipe(Effect.timeout(5_000)),
          )
          return true
        })
      } catch (error) {
        for (const p of processes) console.error(`--- ${p.name}\n${p.output()}`)
        await stopAll()
        throw error
      } finally {
        await close()
      }
      const serverCounters = serverCountersOf(
        servers.map((server, n) => ({ name: server.name, metricsPort: metricsPorts[n] as number })),
      )
      return { name, client: { kind: "shardkv", controllers }, processes, stop: stopAll, serverCounters }
    },
  }
}
