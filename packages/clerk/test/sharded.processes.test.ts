/**
 * Proves that the sharded cluster as real processes over UDP keeps every acknowledged write exactly
 * once, with a linearizable history, while groups join, leave and shards move under concurrent
 * load, and replicas are killed with `kill -9` and restarted.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { join, resolve } from "node:path"
import type { KvClientShape } from "@kv/kvraft"
import { type RpcNodeShape, SeededRandom, seedFromEnv } from "@kv/rpc"
import { makeShardKvClient } from "@kv/shardkv"
import {
  checkLinearizable,
  freeUdpPorts,
  HistoryRecorder,
  type KvInput,
  ProcessGroup,
  pollUntil,
  tempDir,
  udpClientNode,
  writeFile,
} from "@kv/testkit"
import { Effect, Exit, Scope } from "effect"
import { connectAdmin } from "../src/index.ts"

const root = resolve(import.meta.dir, "../../..")
const bins = {
  controller: join(root, "packages/shardctrler/bin/shardctrler.ts"),
  group: join(root, "packages/shardkv/bin/shardkv.ts"),
}
const seed = seedFromEnv()
const processes = new ProcessGroup()
const dir = tempDir("kv-sharded")
const scope = Effect.runSync(Scope.make())

afterAll(async () => {
  await processes.killAll()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  dir.remove()
})

const rpcNode = (): Promise<RpcNodeShape> => udpClientNode(scope)

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

    const history = new HistoryRecorder()
    const nclients = 5
    const clients: KvClientShape[] = []
    for (let c = 0; c < nclients; c++) {
      clients.push(await Effect.runPromise(makeShardKvClient(await rpcNode(), { controllers, deadlineMs: 60_000 })))
    }
    let completed = 0
    const record = async (c: number, input: KvInput, run: () => Effect.Effect<string | undefined, unknown>) => {
      const token = history.begin(c, input)
      const exit = await Effect.runPromiseExit(run())
      if (Exit.isSuccess(exit)) {
        history.end(token, typeof exit.value === "string" ? exit.value : undefined)
        completed++
      } else {
        history.unknown(token)
        throw new Error(`${input.op} ${input.key} failed: ${String(exit.cause)}`)
      }
      return exit.value
    }

    let done = false
    const appended: Map<string, string[]>[] = []
    const load = clients.map(async (client, c) => {
      const mine = new Map<string, string[]>()
      appended.push(mine)
      for (let j = 0; !done; j++) {
        const key = `c${c}-k${j % 4}`
        if (j % 3 === 2) {
          await record(c, { op: "get", key }, () => client.get(key))
        } else {
          const value = `x ${c} ${j} y;`
          await record(c, { op: "append", key, value }, () => Effect.as(client.append(key, value), undefined))
          mine.set(key, [...(mine.get(key) ?? []), value])
        }
      }
    })

    /**
     * A fault lasts while the clients complete `n` more operations: it meets the load, however slow
     * the machine. A client's failure ends the wait at once.
     */
    const whileClientsComplete = async (n: number) => {
      const target = completed + n
      await Promise.race([
        pollUntil(`the clients to complete ${n} more operations`, () => completed >= target, { timeoutMs: 30_000 }),
        Promise.all(load),
      ])
    }

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
        await whileClientsComplete(20 + random.int(40))
        startReplica(gid, k)
        if (random.chance(0.3)) {
          const c = random.int(3)
          await processes.kill(`ctrl-${c}`)
          await whileClientsComplete(10 + random.int(20))
          startController(c)
        }
        await whileClientsComplete(10)
      }
    }
    try {
      await chaos()
      done = true
      await Promise.all(load)
      // Every acknowledged append is present exactly once, in order.
      const reader = clients[0]!
      for (const mine of appended) {
        for (const [key, values] of mine) {
          const value = await record(0, { op: "get", key }, () => reader.get(key))
          expect(value).toBe(values.join(""))
        }
      }
      const latest = await admin.query()
      expect(Object.keys(latest.groups).sort()).toEqual(["100", "101", "102"])
      await admin.close()
      const ops = history.history()
      const verdict = checkLinearizable(ops)
      console.log(`${ops.length} operations; linearizable: ${verdict.ok}`)
      if (!verdict.ok) throw new Error(verdict.explanation)
    } catch (error) {
      done = true
      for (const name of ["ctrl-0", "g100-0", "g101-0", "g102-0"]) {
        console.error(`--- ${name}\n${processes.output(name).slice(-3000)}`)
      }
      throw error
    }
  }, 180_000)
})
