/**
 * `bun run cluster`: every replica of the configured cluster as its own process, on loopback.
 * Waits until each group has a leader, joins the shard groups to the controller (idempotent, so a
 * restart resumes), prints what runs where, and stops everything cleanly on Ctrl-C or SIGTERM.
 * A cluster configured without a key gets one on its first start, `<dataDir>/cluster.key`, which
 * its servers, `bun run kv` and `connect({ config })` then find on their own.
 */
import { mkdirSync } from "node:fs"
import { join, resolve } from "node:path"
import {
  type ClusterConfig,
  ConfigError,
  ensureGeneratedClusterKey,
  GENERATED_KEY_FILE,
  loadClusterConfig,
} from "@kv/kvraft"
import { ProcessGroup } from "@kv/launcher"
import { RaftStatusMethod } from "@kv/raft"
import { RpcNode, type RpcNodeShape, Transport } from "@kv/rpc"
import { makeControllerClient } from "@kv/shardctrler"
import { Effect, Layer, ManagedRuntime } from "effect"

const root = resolve(import.meta.dir, "..")
const bins = {
  controller: join(root, "packages/shardctrler/bin/shardctrler.ts"),
  group: join(root, "packages/shardkv/bin/shardkv.ts"),
  kvraft: join(root, "packages/kvraft/bin/kvraft.ts"),
}

interface Replica {
  readonly service: string
  readonly replica: number
  readonly address: string
  readonly args: string[]
  readonly log: string
}

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

const configPath = resolve(arg("--config") ?? "cluster.toml")
let config: ClusterConfig
let keyNote: string
try {
  config = loadClusterConfig(configPath)
  let created = false
  if (config.clusterKey === undefined) {
    created = ensureGeneratedClusterKey(config.dataDir).created
    config = loadClusterConfig(configPath)
  }
  keyNote =
    config.clusterKeySource === "dataDir"
      ? `${created ? "created the cluster key" : "cluster key"} ${join(config.dataDir, GENERATED_KEY_FILE)}`
      : `cluster key from ${config.clusterKeySource}`
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : String(error))
  process.exit(2)
}

const logDir = join(config.dataDir, "logs")
mkdirSync(logDir, { recursive: true })
const metricsBase = config.metrics?.basePort
let metricsOffset = 0

const replicas: Replica[] = []
const add = (service: string, bin: string, addresses: readonly string[], extra: string[]) => {
  addresses.forEach((address, k) => {
    const args = [bin, ...extra, "--replica", String(k), "--config", configPath]
    if (metricsBase !== undefined) args.push("--metrics-port", String(metricsBase + metricsOffset++))
    replicas.push({ service, replica: k, address, args, log: join(logDir, `${service.replace(" ", "-")}-${k}.log`) })
  })
}
if (config.controller.replicas.length > 0) add("controller", bins.controller, config.controller.replicas, [])
for (const [gid, group] of config.groups) add(`group ${gid}`, bins.group, group.replicas, ["--gid", String(gid)])
if (config.kvraft !== undefined) add("kvraft", bins.kvraft, config.kvraft.replicas, [])

// Ctrl-C stops the replicas gracefully (a leader hands off first), so signals are handled here. The
// replicas also stop by themselves once this script is gone, however it ended (KV_PARENT_PID).
const processes = new ProcessGroup({ killOnSignals: false })
const nameOf = (r: Replica) => `${r.service} replica ${r.replica}`
let stopping = false
const start = (r: Replica) => {
  const replica = processes.start(nameOf(r), ["bun", ...r.args], { logFile: r.log })
  void replica.exited.then((code) => {
    if (!stopping) console.error(`! ${r.service} replica ${r.replica} exited with code ${code}; see ${r.log}`)
  })
}

const stopAll = async (signal: string) => {
  if (stopping) return
  stopping = true
  console.log(`\n${signal}: stopping ${replicas.length} replicas...`)
  await processes.stopAll({ graceMs: 10_000 })
  await runtime.dispose()
  console.log("stopped; data is kept in", config.dataDir)
  process.exit(0)
}
process.on("SIGINT", () => void stopAll("SIGINT"))
process.on("SIGTERM", () => void stopAll("SIGTERM"))

const runtime = ManagedRuntime.make(
  RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0", key: config.clusterKey }))),
)
const rpc: RpcNodeShape = await runtime.runPromise(RpcNode.useSync((r) => r))

console.log(`starting ${replicas.length} replicas from ${configPath} (logs in ${logDir}; ${keyNote})`)
for (const r of replicas) start(r)

/** Leader known to each service, polled until every service has one. */
const leaders = new Map<string, string>()
const services = [...new Set(replicas.map((r) => r.service))]
const deadline = Date.now() + 60_000
while (leaders.size < services.length && !stopping) {
  // Every replica at once: one still starting costs the round its 300 ms deadline, not the others.
  await Promise.all(
    replicas
      .filter((r) => !leaders.has(r.service))
      .map(async (r) => {
        const reply = await runtime.runPromise(
          rpc.call(r.address, RaftStatusMethod, {}, { attemptTimeoutMs: 100, deadlineMs: 300 }).pipe(Effect.option),
        )
        if (reply._tag === "Some" && reply.value.role === "leader" && !leaders.has(r.service)) {
          leaders.set(r.service, r.address)
        }
      }),
  )
  process.stdout.write(
    `\r  leaders elected: ${leaders.size}/${services.length} (${services.filter((s) => !leaders.has(s)).join(", ") || "all"})   `,
  )
  if (Date.now() > deadline) {
    console.error(
      `\nno leader after 60 s for: ${services.filter((s) => !leaders.has(s)).join(", ")}; see the logs in ${logDir}`,
    )
    await stopAll("timeout")
  }
  if (leaders.size < services.length) await Bun.sleep(200)
}
console.log("")

if (config.groups.size > 0) {
  const admin = await runtime.runPromise(makeControllerClient(rpc, { controllers: config.controller.replicas }))
  const current = await runtime.runPromise(admin.query(-1))
  const missing = [...config.groups].filter(([gid]) => current.groups[String(gid)] === undefined)
  if (missing.length > 0) {
    await runtime.runPromise(admin.join(Object.fromEntries(missing.map(([gid, g]) => [String(gid), g.replicas]))))
    console.log(`  joined groups ${missing.map(([gid]) => gid).join(", ")} to the controller`)
  } else {
    console.log(`  groups already joined (configuration #${current.num})`)
  }
}

const width = Math.max(...replicas.map((r) => r.service.length))
console.log("\nrunning:")
for (const r of replicas) {
  const leader = leaders.get(r.service) === r.address ? " (leader)" : ""
  console.log(
    `  ${r.service.padEnd(width)}  replica ${r.replica}  udp://${r.address}  pid ${processes.get(nameOf(r))?.pid}${leader}`,
  )
}
console.log(`
try, in another terminal:
  bun run kv put hello world
  bun run kv get hello
  bun run kv status
Ctrl-C stops the cluster; running \`bun run cluster\` again resumes from ${config.dataDir}.`)
