/**
 * Proves that three kvraft processes over real UDP with file storage keep every acknowledged write
 * through `kill -9` of one replica, then another, and through a restart of all three.
 */
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import { freeUdpPorts, pollUntil, processFixture, writeFile } from "@kv/testkit"
import { Effect } from "effect"
import { type KvClientShape, KvStatusMethod, makeKvClient, type StatusReply } from "../src/index.ts"

const BIN = join(import.meta.dir, "../bin/kvraft.ts")
const { processes, dir, rpcNode } = processFixture("kvraft-processes")

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

describe("kvraft processes over real UDP", () => {
  test("kill -9 one replica then another, restart them, then restart all three: nothing acknowledged is lost", async () => {
    const ports = await freeUdpPorts(3)
    const replicas = ports.map((p) => `127.0.0.1:${p}`)
    const config = join(dir.path, "cluster.toml")
    writeFile(
      config,
      `dataDir = "./data"\nmaxRaftStateBytes = 65536\n[kvraft]\nreplicas = ${JSON.stringify(replicas)}\n`,
    )
    const start = (k: number) =>
      processes.start(`replica-${k}`, ["bun", BIN, "--replica", String(k), "--config", config], { cwd: dir.path })
    for (let k = 0; k < 3; k++) start(k)
    const rpc = await rpcNode()
    const kv: KvClientShape = await run(makeKvClient(rpc, { servers: replicas, deadlineMs: 30_000 }))
    const written = new Map<string, string>()
    const writeBatch = async (prefix: string, n: number) => {
      await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const key = `${prefix}-${i}`
          await run(kv.put(key, `v-${key}`))
          await run(kv.append(key, "+"))
          written.set(key, `v-${key}+`)
        }),
      )
    }
    const checkAll = async () => {
      for (const [key, value] of written) expect(await run(kv.get(key))).toBe(value)
    }
    const status = (k: number): Promise<StatusReply> =>
      run(rpc.call(replicas[k]!, KvStatusMethod, {}, { deadlineMs: 3_000 }))

    try {
      await writeBatch("a", 100)
      await processes.kill("replica-0")
      await writeBatch("b", 100)
      start(0)
      await writeBatch("c", 50)
      await processes.kill("replica-1")
      await writeBatch("d", 100)
      start(1)
      await writeBatch("e", 50)
      await checkAll()
      // The restarted replicas catch up with the leader's log (from their disk, then from peers).
      let statuses: StatusReply[] = []
      await pollUntil(
        "the replicas to catch up",
        async () => {
          statuses = await Promise.all([0, 1, 2].map(status))
          const commit = Math.max(...statuses.map((s) => s.commitIndex))
          return statuses.every((s) => s.appliedIndex >= commit && s.keys === written.size)
        },
        // A replica that does not answer its status at all fails the test at once.
        { timeoutMs: 20_000, intervalMs: 100, stopOn: () => true },
      ).catch((error: Error) => {
        throw new Error(`${error.message}: ${JSON.stringify(statuses)}`)
      })
      // Everything down hard, then back from the data directories alone.
      await Promise.all([0, 1, 2].map((k) => processes.kill(`replica-${k}`)))
      for (let k = 0; k < 3; k++) start(k)
      await checkAll()
      await writeBatch("f", 20)
      await checkAll()
    } catch (error) {
      for (let k = 0; k < 3; k++) console.error(`--- replica-${k}\n${processes.output(`replica-${k}`)}`)
      throw error
    }
  }, 120_000)
})
