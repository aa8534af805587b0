/**
 * Proves that the sharded cluster as real processes over UDP keeps every acknowledged write exactly
 * once, with a linearizable history, while groups join, leave and shards move under concurrent
 * load, and replicas are killed with `kill -9` and restarted.
 */
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import type { KvClientShape } from "@kv/kvraft"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { makeShardKvClient } from "@kv/shardkv"
import { freeUdpPorts, processFixture, serverBins, startRecordedLoad, writeFile } from "@kv/testkit"
import { Effect } from "effect"
import { connectAdmin } from "../src/index.ts"

const bins = serverBins
const seed = seedFromEnv()
const { processes, dir, rpcNode } = processFixture("kv-sharded")

describe("the sharded cluster as processes", () => {
  test("joins, leaves and moves under load with kill -9 and restarts: every acknowledged write exactly once, linearizable", async () => {
    console.log(
      `seed ${seed} (replay the choices: KV_SEED=${seed} bun test packages/clerk/test/sharded.processes.test.ts)`,
    )
    const random = new SeededRandom(seed)
    const ports = await freeUdpPorts(12)
    const address = (i: number) => `127.0.0.1:${ports[i]}`
    const controllers = [0, 1, 2].map(address)
    const groups = new Map<number, string[]>([
      [100, [3, 4, 5].map(address)],
      [101, [6, 7, 8].map(address)],
      [102, [9, 10, 11].map(address)],
    ])
    const config = join(dir.path, "cluster.toml")
    writeFile(
      config,
      [
        `dataDir = "./data"`,
        `maxRaftStateBytes = 32768`,
        `[controller]`,
        `replicas = ${JSON.stringify(controllers)}`,
        ...[...groups].flatMap(([gid, r]) => [`[groups.${gid}]`, `replicas = ${JSON.stringify(r)}`]),
      ].join("\n"),
    )
    const startController = (k: number) =>
      processes.start(`ctrl-${k}`, ["bun", bins.controller, "--replica", String(k), "--config", config], {
        cwd: dir.path,
      })
    const startReplica = (gid: number, k: number) =>
      processes.start(
        `g${gid}-${k}`,
        ["bun", bins.group, "--gid", String(gid), "--replica", String(k), "--config", config],
        { cwd: dir.path },
      )
    for (let k = 0; k < 3; k++) startController(k)
    for (const gid of groups.keys()) for (let k = 0; k < 3; k++) startReplica(gid, k)

    // The Promise admin API a user would call.
    const admin = await connectAdmin({ controllers })
    const joinGroup = (gid: number) => admin.join({ [String(gid)]: groups.get(gid)! })
    await joinGroup(100)

    const nclients = 5
    const clients: KvClientShape[] = []
    for (let c = 0; c < nclients; c++) {
      clients.push(await Effect.runPromise(makeShardKvClient(await rpcNode(), { controllers, deadlineMs: 60_000 })))
    }
    const load = startRecordedLoad(clients, { keysPerClient: 4, getEvery: 3, timeoutMs: 30_000 })

    // Reconfigure and kill while the clients run.
    const chaos = async () => {
      const steps: (() => Promise<void>)[] = [
        () => joinGroup(101),
        () => joinGroup(102),
        () => admin.move(random.int(10), 101),
        () => admin.leave([100]),
        () => joinGroup(100),
        () => admin.leave([102]),
        () => joinGroup(102),
      ]
      for (const step of steps) {
        await step()
        // One replica of a random group dies hard and comes back after a while.
        const gid = [100, 101, 102][random.int(3)]!
        const k = random.int(3)
        await processes.kill(`g${gid}-${k}`)
        await load.whileClientsComplete(20 + random.int(40))
        startReplica(gid, k)
        if (random.chance(0.3)) {
          const c = random.int(3)
          await processes.kill(`ctrl-${c}`)
          await load.whileClientsComplete(10 + random.int(20))
          startController(c)
        }
        await load.whileClientsComplete(10)
      }
    }
    try {
      await chaos()
      // Every acknowledged append is present exactly once, in order; the history is linearizable.
      await load.finish(clients[0]!)
      const latest = await admin.query()
      expect(Object.keys(latest.groups).sort()).toEqual(["100", "101", "102"])
      await admin.close()
    } catch (error) {
      load.abort()
      for (const name of ["ctrl-0", "g100-0", "g101-0", "g102-0"]) {
        console.error(`--- ${name}\n${processes.output(name).slice(-3000)}`)
      }
      throw error
    }
  }, 180_000)
})
