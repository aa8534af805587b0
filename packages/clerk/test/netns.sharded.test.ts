/**
 * Proves that a sharded cluster spread over three hosts (each a network namespace running one
 * replica of the controller and of each of groups 100, 101 and 102, as one machine per replica
 * would) serves clients on two other hosts linearizably, every acknowledged append exactly once,
 * while an admin on a client host joins, leaves and moves shards, through a minute of real
 * partitions (a host isolated, majority/minority and no-majority splits, all healed), host crashes
 * (`kill -9` of the host's four processes, restarted from disk) and host freezes (SIGSTOP/SIGCONT).
 * Replicas bind 0.0.0.0, the interface address, or the advertised address. Needs root and iproute2
 * (.ci/run installs it); fails saying so otherwise.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { join, resolve } from "node:path"
import { NetLab } from "@kv/netlab"
import { seedFromEnv } from "@kv/rpc"
import { checkLinearizable, ProcessGroup, pollUntil, tempDir, writeFile } from "@kv/testkit"
import { runFaults } from "./support/netnsFaults.ts"
import { acknowledged, checkAppends, historyOf, keepRecords, readRecords } from "./support/netnsHistory.ts"
import type { AdminJob, ClientsJob, OpRecord } from "./support/netnsWorker.ts"

const root = resolve(import.meta.dir, "../../..")
const bins = {
  ctrl: join(root, "packages/shardctrler/bin/shardctrler.ts"),
  group: join(root, "packages/shardkv/bin/shardkv.ts"),
}
const WORKER = join(import.meta.dir, "support/netnsWorker.ts")
const seed = seedFromEnv()
const DURATION_MS = Number(process.env.KV_NETNS_SECONDS ?? 60) * 1000
const SERVER_HOSTS = [0, 1, 2]
const CLIENT_HOSTS = [3, 4]
const GIDS = [100, 101, 102]
const N_SHARDS = 10
const processes = new ProcessGroup()
const dir = tempDir("netns-sharded")
let lab: NetLab | undefined

afterAll(async () => {
  await processes.killAll()
  lab?.destroy()
  dir.remove()
})

describe("the sharded cluster across hosts (network namespaces)", () => {
  test("three hosts of four replicas under partitions, crashes and freezes while shards move, clients on two other hosts: linearizable, every acknowledged append once", async () => {
    console.log(`seed ${seed} (replay the choices: KV_SEED=${seed} bun test packages/clerk/test/netns.sharded.test.ts)`)
    const started = Date.now()
    const since = () => `${((Date.now() - started) / 1000).toFixed(1)}s`
    const net = NetLab.create({ hosts: SERVER_HOSTS.length + CLIENT_HOSTS.length })
    lab = net
    const at = (port: number) => SERVER_HOSTS.map((k) => `${net.host(k).address}:${port}`)
    const controllers = at(7000)
    const groups = Object.fromEntries(GIDS.map((gid) => [String(gid), at(gid + 7000)]))
    const config = join(dir.path, "cluster.toml")
    writeFile(
      config,
      [
        `nShards = ${N_SHARDS}`,
        `maxRaftStateBytes = 32768`,
        `[controller]`,
        `replicas = ${JSON.stringify(controllers)}`,
        ...GIDS.flatMap((gid) => [`[groups.${gid}]`, `replicas = ${JSON.stringify(groups[String(gid)])}`]),
      ].join("\n"),
    )
    // Where each host's replicas bind: everything, its interface, or (no flag) the advertised address.
    const listen = [["--listen", "0.0.0.0"], ["--listen", net.host(1).address], []]
    const onHost = (k: number) => [`ctrl-h${k}`, ...GIDS.map((gid) => `g${gid}-h${k}`)]
    /** `ctrl-h<k>` or `g<gid>-h<k>`: replica k of the controller or of group gid, on host k. */
    const startServer = (name: string) => {
      const [service, host] = name.split("-h") as [string, string]
      const k = Number(host)
      const serviceArgs = service === "ctrl" ? [bins.ctrl] : [bins.group, "--gid", service.slice(1)]
      net.start(
        processes,
        name,
        k,
        [
          "bun",
          ...serviceArgs,
          "--replica",
          host,
          "--config",
          config,
          "--data",
          join(dir.path, `host-${k}`),
          ...(listen[k] ?? []),
        ],
        { cwd: dir.path },
      )
    }
    const outs = CLIENT_HOSTS.map((h) => join(dir.path, `clients-${h}.jsonl`))
    const adminOut = join(dir.path, "admin.jsonl")
    const allClients = [0, 1, 2, 3, 4, 5]
    const admin: AdminJob = {
      mode: "admin",
      controllers,
      bind: `${net.host(CLIENT_HOSTS[0] as number).address}:0`,
      groups,
      nShards: N_SHARDS,
      durationMs: DURATION_MS,
      seed,
      out: adminOut,
    }
    net.start(processes, "admin", CLIENT_HOSTS[0] as number, ["bun", WORKER, JSON.stringify(admin)], { cwd: dir.path })
    CLIENT_HOSTS.forEach((h, i) => {
      const job: ClientsJob = {
        mode: "clients",
        kind: "sharded",
        servers: controllers,
        bind: `${net.host(h).address}:0`,
        clients: allClients.slice(i * 3, i * 3 + 3),
        allClients,
        keysPerClient: 4,
        seed,
        out: outs[i] as string,
      }
      net.start(processes, `clients-${h}`, h, ["bun", WORKER, JSON.stringify(job)], { cwd: dir.path })
    })
    const workers = ["admin", ...CLIENT_HOSTS.map((h) => `clients-${h}`)]
    // Servers start while the client machines do: the admin's first join waits for the controller.
    const servers = SERVER_HOSTS.flatMap(onHost)
    for (const name of servers) startServer(name)
    await Promise.all(
      [...servers, ...workers].map((name) => processes.get(name)?.waitForOutput(/replica started|^ready/m, 90_000)),
    )
    console.log(`${since()}: 12 replicas on 3 hosts, an admin and 6 clients on 2 hosts running`)
    // The first join has to land before any client can be served.
    await pollUntil("the first group to join", () => readRecords(adminOut).length > 0, { timeoutMs: 60_000 })
    console.log(`${since()}: ${readRecords(adminOut).length} admin step done`)

    try {
      const counts = await runFaults({
        lab: net,
        processes,
        serverHosts: SERVER_HOSTS,
        clientHosts: CLIENT_HOSTS,
        processesOn: onHost,
        restart: startServer,
        seed,
        durationMs: DURATION_MS,
        progress: () => acknowledged(outs),
        progressAfterHeal: 5,
        log: (line) => console.log(line),
      })
      // The admin ends with every group joined; then the clients end and read their keys once more.
      expect(await processes.get("admin")?.exited).toBe(0)
      const codes = await Promise.all(CLIENT_HOSTS.map((h) => processes.stop(`clients-${h}`, 90_000)))
      expect(codes).toEqual(CLIENT_HOSTS.map(() => 0))
      const steps = readRecords<{ what: string; ok: boolean; groups?: number[] }>(adminOut)
      const done = steps.filter((s) => s.ok && s.what !== "final").map((s) => s.what)
      const failed = steps.filter((s) => !s.ok).map((s) => s.what)
      expect(steps.at(-1)?.groups?.sort()).toEqual(GIDS)
      const records = outs.flatMap((out) => readRecords<OpRecord>(out))
      const appends = checkAppends(records)
      const verdict = checkLinearizable(historyOf(records))
      const gets = records.filter((r) => r.op === "get")
      console.log(
        `admin: ${done.length} steps done (${done.join(", ")}), ${failed.length} failed or of unknown outcome (${failed.join(", ")})\n` +
          `faults ${JSON.stringify(counts)}; ${records.length} operations (${gets.length} gets, ${records.length - gets.length} appends: ` +
          `${appends.acknowledged} acknowledged, each present once; ${appends.unknown} of unknown outcome, ${appends.unknownApplied} of them applied); ` +
          `linearizable: ${verdict.ok}; ${since()} wall`,
      )
      if (!verdict.ok) throw new Error(verdict.explanation)
      expect(Object.values(counts).every((n) => n > 0)).toBe(true)
    } catch (error) {
      keepRecords([...outs, adminOut], `kv-netns-sharded-${seed}`)
      for (const name of [...onHost(0), ...workers])
        console.error(`--- ${name}\n${processes.output(name).slice(-2500)}`)
      throw error
    }
  }, 300_000)
})
