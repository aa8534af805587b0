/**
 * Shard groups co-hosted on three processes, as the process tests of shared sockets and shared
 * logs run them: a cluster.toml with three controllers and the groups, the controllers started,
 * host k started as replica k of every group (`--shared-wal`, a data directory per host, as on
 * separate machines), the groups joined, and clients.
 */
import { join } from "node:path"
import type { KvClientShape } from "@kv/kvraft"
import type { RpcNodeShape } from "@kv/rpc"
import { type ControllerClientShape, makeControllerClient } from "@kv/shardctrler"
import { type ProcessGroup, serverBins, writeFile } from "@kv/testkit"
import { Effect } from "effect"
import { makeShardKvClient } from "../../src/index.ts"

export interface CoHostedGroups {
  readonly config: string
  readonly controllers: readonly string[]
  /** The command line of host k serving replica k of `gids`. */
  hostArgs(k: number, gids: readonly number[]): string[]
  /** Starts host k serving every group, as process `host-<k>`. */
  startHost(k: number): void
  /** Joins every group, then starts the hosts' clients. */
  connect(clientCount: number): Promise<{ admin: ControllerClientShape; clients: KvClientShape[] }>
}

export const coHostedGroups = (options: {
  readonly processes: ProcessGroup
  readonly dir: string
  readonly rpcNode: () => Promise<RpcNodeShape>
  readonly controllers: readonly string[]
  /** Each group's replica addresses, replica k on host k. */
  readonly groups: ReadonlyMap<number, readonly string[]>
  readonly maxRaftStateBytes: number
  /** Every group's `preferredLeader` (replica k, i.e. host k); unset: none. */
  readonly preferredLeader?: number
}): CoHostedGroups => {
  const { processes, dir, rpcNode, controllers, groups } = options
  const gids = [...groups.keys()]
  const config = join(dir, "cluster.toml")
  writeFile(
    config,
    [
      `dataDir = "./data"`,
      `maxRaftStateBytes = ${options.maxRaftStateBytes}`,
      `[controller]`,
      `replicas = ${JSON.stringify(controllers)}`,
      ...[...groups].flatMap(([gid, replicas]) => [
        `[groups.${gid}]`,
        `replicas = ${JSON.stringify(replicas)}`,
        ...(options.preferredLeader === undefined ? [] : [`preferredLeader = ${options.preferredLeader}`]),
      ]),
    ].join("\n"),
  )
  for (let k = 0; k < controllers.length; k++) {
    processes.start(`ctrl-${k}`, ["bun", serverBins.controller, "--replica", String(k), "--config", config], {
      cwd: dir,
    })
  }
  const hostArgs = (k: number, served: readonly number[]) => [
    "bun",
    serverBins.group,
    "--gid",
    served.join(","),
    "--replica",
    String(k),
    "--shared-wal",
    "--config",
    config,
    // A data directory per host, as on separate machines: one shared log per process and root.
    "--data",
    join(dir, `host-${k}`),
  ]
  return {
    config,
    controllers,
    hostArgs,
    startHost: (k) => {
      processes.start(`host-${k}`, hostArgs(k, gids), { cwd: dir })
    },
    connect: async (clientCount) => {
      const admin = await Effect.runPromise(makeControllerClient(await rpcNode(), { controllers, deadlineMs: 60_000 }))
      await Effect.runPromise(admin.join(Object.fromEntries([...groups].map(([gid, r]) => [String(gid), [...r]]))))
      const clients: KvClientShape[] = []
      for (let c = 0; c < clientCount; c++) {
        clients.push(await Effect.runPromise(makeShardKvClient(await rpcNode(), { controllers, deadlineMs: 60_000 })))
      }
      return { admin, clients }
    },
  }
}
