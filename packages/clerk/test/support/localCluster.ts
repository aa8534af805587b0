/**
 * A small local cluster of real processes for tests of the clerk and the CLI: the kvraft group and,
 * when asked, a shard controller and shard groups (joined), each service's replicas in one process.
 */
import { join } from "node:path"
import { freeUdpPorts, ProcessGroup, type TempDir, tempDir, writeFile } from "@kv/testkit"
import { connectAdmin } from "../../src/index.ts"

const root = join(import.meta.dir, "../../../..")
const bins = {
  kvraft: join(root, "packages/kvraft/bin/kvraft.ts"),
  controller: join(root, "packages/shardctrler/bin/shardctrler.ts"),
  group: join(root, "packages/shardkv/bin/shardkv.ts"),
}

export interface LocalCluster {
  /** The cluster.toml naming every replica. */
  readonly config: string
  readonly dir: TempDir
  readonly processes: ProcessGroup
  /** Kills every process and removes the data directory. */
  stop(): Promise<void>
}

/** Starts the kvraft group, and the controller with `gids` joined when there are any. */
export const startLocalCluster = async (name: string, gids: readonly number[] = []): Promise<LocalCluster> => {
  const dir = tempDir(name)
  const processes = new ProcessGroup()
  const ports = await freeUdpPorts(3 + (gids.length > 0 ? 3 + 3 * gids.length : 0))
  const addresses = (from: number) => [0, 1, 2].map((i) => `127.0.0.1:${ports[from + i]}`)
  const groups = gids.map((gid, i) => [gid, addresses(6 + 3 * i)] as const)
  const config = join(dir.path, "cluster.toml")
  writeFile(
    config,
    [
      `dataDir = "./data"`,
      `[kvraft]`,
      `replicas = ${JSON.stringify(addresses(0))}`,
      ...(gids.length > 0 ? [`[controller]`, `replicas = ${JSON.stringify(addresses(3))}`] : []),
      ...groups.flatMap(([gid, replicas]) => [`[groups.${gid}]`, `replicas = ${JSON.stringify(replicas)}`]),
    ].join("\n"),
  )
  const start = (label: string, command: string[]) => processes.start(label, command, { cwd: dir.path })
  start("kvraft", ["bun", bins.kvraft, "--config", config])
  const cluster: LocalCluster = {
    config,
    dir,
    processes,
    stop: async () => {
      await processes.killAll()
      dir.remove()
    },
  }
  if (gids.length === 0) return cluster
  start("controller", ["bun", bins.controller, "--config", config])
  for (const [gid] of groups) start(`group-${gid}`, ["bun", bins.group, "--gid", String(gid), "--config", config])
  const admin = await connectAdmin({ config, deadlineMs: 30_000 })
  try {
    for (const [gid, replicas] of groups) await admin.join({ [String(gid)]: replicas })
  } finally {
    await admin.close()
  }
  return cluster
}
