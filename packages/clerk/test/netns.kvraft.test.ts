/**
 * Proves that a kvraft group of three hosts, each a network namespace with its own address, serves
 * clients on two other hosts linearizably, every acknowledged append exactly once, through a minute
 * of real partitions (a host isolated, majority/minority and no-majority splits of the switch, all
 * healed), host crashes (`kill -9`, restarted from disk) and host freezes (SIGSTOP/SIGCONT). The
 * replicas bind one address and advertise another: 0.0.0.0, the interface address, and the
 * advertised address itself. Needs root and iproute2 (.ci/run installs it); fails saying so otherwise.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { join, resolve } from "node:path"
import { NetLab } from "@kv/netlab"
import { seedFromEnv } from "@kv/rpc"
import { checkLinearizable, ProcessGroup, tempDir, writeFile } from "@kv/testkit"
import { runFaults } from "./support/netnsFaults.ts"
import { acknowledged, checkAppends, historyOf, keepRecords, readRecords } from "./support/netnsHistory.ts"
import type { ClientsJob, OpRecord } from "./support/netnsWorker.ts"

const root = resolve(import.meta.dir, "../../..")
const BIN = join(root, "packages/kvraft/bin/kvraft.ts")
const WORKER = join(import.meta.dir, "support/netnsWorker.ts")
const seed = seedFromEnv()
const DURATION_MS = Number(process.env.KV_NETNS_SECONDS ?? 60) * 1000
const SERVER_HOSTS = [0, 1, 2]
const CLIENT_HOSTS = [3, 4]
const processes = new ProcessGroup()
const dir = tempDir("netns-kvraft")
let lab: NetLab | undefined

afterAll(async () => {
  await processes.killAll()
  lab?.destroy()
  dir.remove()
})

describe("kvraft across hosts (network namespaces)", () => {
  test("three hosts under partitions, crashes and freezes, clients on two other hosts: linearizable, every acknowledged append once", async () => {
    console.log(`seed ${seed} (replay the choices: KV_SEED=${seed} bun test packages/clerk/test/netns.kvraft.test.ts)`)
    const started = Date.now()
    const net = NetLab.create({ hosts: SERVER_HOSTS.length + CLIENT_HOSTS.length })
    lab = net
    const replicas = SERVER_HOSTS.map((k) => `${net.host(k).address}:7001`)
    const config = join(dir.path, "cluster.toml")
    writeFile(config, `maxRaftStateBytes = 65536\n[kvraft]\nreplicas = ${JSON.stringify(replicas)}\n`)
    // Where each replica binds: everything, its interface, or (no flag) the advertised address.
    const listen = [["--listen", "0.0.0.0"], ["--listen", net.host(1).address], []]
    const startServer = (name: string) => {
      const k = Number(name.slice("kv-".length))
      net.start(
        processes,
        name,
        k,
        [
          "bun",
          BIN,
          "--replica",
          String(k),
          "--config",
          config,
          "--data",
          join(dir.path, `host-${k}`),
          ...(listen[k] ?? []),
        ],
        { cwd: dir.path },
      )
    }
    for (const k of SERVER_HOSTS) startServer(`kv-${k}`)
    await Promise.all(SERVER_HOSTS.map((k) => processes.get(`kv-${k}`)?.waitForOutput("replica started", 60_000)))

    const outs = CLIENT_HOSTS.map((h) => join(dir.path, `clients-${h}.jsonl`))
    const allClients = [0, 1, 2, 3, 4, 5]
    CLIENT_HOSTS.forEach((h, i) => {
      const job: ClientsJob = {
        mode: "clients",
        kind: "kvraft",
        servers: replicas,
        bind: `${net.host(h).address}:0`,
        clients: allClients.slice(i * 3, i * 3 + 3),
        allClients,
        keysPerClient: 3,
        seed,
        out: outs[i] as string,
      }
      net.start(processes, `clients-${h}`, h, ["bun", WORKER, JSON.stringify(job)], { cwd: dir.path })
    })
    await Promise.all(CLIENT_HOSTS.map((h) => processes.get(`clients-${h}`)?.waitForOutput("ready", 60_000)))
    console.log(`${((Date.now() - started) / 1000).toFixed(1)}s: 3 replicas and 6 clients on 5 hosts running`)

    try {
      const counts = await runFaults({
        lab: net,
        processes,
        serverHosts: SERVER_HOSTS,
        clientHosts: CLIENT_HOSTS,
        processesOn: (k) => [`kv-${k}`],
        restart: startServer,
        seed,
        durationMs: DURATION_MS,
        progress: () => acknowledged(outs),
        progressAfterHeal: 5,
        log: (line) => console.log(line),
      })
      // SIGTERM: each client ends its current operation, reads its own keys once more, and exits 0.
      const codes = await Promise.all(CLIENT_HOSTS.map((h) => processes.stop(`clients-${h}`, 90_000)))
      expect(codes).toEqual(CLIENT_HOSTS.map(() => 0))
      const records = outs.flatMap((out) => readRecords<OpRecord>(out))
      const appends = checkAppends(records)
      const history = historyOf(records)
      const verdict = checkLinearizable(history)
      const gets = records.filter((r) => r.op === "get")
      console.log(
        `faults ${JSON.stringify(counts)}; ${records.length} operations (${gets.length} gets, ${records.length - gets.length} appends: ` +
          `${appends.acknowledged} acknowledged, each present once; ${appends.unknown} of unknown outcome, ${appends.unknownApplied} of them applied); ` +
          `linearizable: ${verdict.ok}; ${((Date.now() - started) / 1000).toFixed(1)}s wall`,
      )
      if (!verdict.ok) throw new Error(verdict.explanation)
      expect(Object.values(counts).every((n) => n > 0)).toBe(true)
    } catch (error) {
      keepRecords(outs, `kv-netns-kvraft-${seed}`)
      for (const name of [...SERVER_HOSTS.map((k) => `kv-${k}`), ...CLIENT_HOSTS.map((h) => `clients-${h}`)]) {
        console.error(`--- ${name}\n${processes.output(name).slice(-3000)}`)
      }
      throw error
    }
  }, 240_000)
})
