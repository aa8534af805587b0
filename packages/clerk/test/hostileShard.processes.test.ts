/**
 * Proves that forged migration requests change nothing in a live sharded cluster of real
 * processes: a stranger asking every replica for every shard (pulls) and for the deletion of every
 * shard's frozen copy (deletes), with and without a cluster key. Without a key the groups refuse
 * (`Refused`); with one the stranger's datagrams are dropped unanswered. Throughout and after,
 * every key keeps its value and writes go on.
 */
import { describe, expect, test } from "bun:test"
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { ShardDeleteMethod, ShardInstalledMethod, ShardPullMethod } from "@kv/shardkv"
import { freeUdpPorts, processFixture, serverBins, writeFile } from "@kv/testkit"
import { Effect } from "effect"
import { connect, connectAdmin } from "../src/index.ts"

const bins = serverBins
const seed = seedFromEnv()
const { processes, dir, rpcNode } = processFixture("kv-hostile-shard")

describe("forged shard messages at a live sharded cluster", () => {
  for (const keyed of [false, true]) {
    test(`change nothing ${keyed ? "with" : "without"} a cluster key`, async () => {
      console.log(`seed ${seed} (replay: KV_SEED=${seed} bun test packages/clerk/test/hostileShard.processes.test.ts)`)
      const random = new SeededRandom(seed)
      const ports = await freeUdpPorts(7)
      const address = (i: number) => `127.0.0.1:${ports[i]}`
      const groups = { "100": [1, 2, 3].map(address), "101": [4, 5, 6].map(address) }
      const cwd = join(dir.path, keyed ? "keyed" : "open")
      mkdirSync(join(cwd, "data"), { recursive: true })
      if (keyed) writeFile(join(cwd, "data", "cluster.key"), `${"5a".repeat(32)}\n`)
      const config = join(cwd, "cluster.toml")
      writeFile(
        config,
        [
          `dataDir = "./data"`,
          `[controller]`,
          `replicas = ${JSON.stringify([address(0)])}`,
          ...Object.entries(groups).flatMap(([gid, r]) => [`[groups.${gid}]`, `replicas = ${JSON.stringify(r)}`]),
        ].join("\n"),
      )
      const names: string[] = ["ctrl"]
      processes.start("ctrl", ["bun", bins.controller, "--replica", "0", "--config", config], { cwd })
      for (const gid of Object.keys(groups)) {
        for (let k = 0; k < 3; k++) {
          names.push(`g${gid}-${k}`)
          processes.start(
            names.at(-1)!,
            ["bun", bins.group, "--gid", gid, "--replica", String(k), "--config", config],
            {
              cwd,
            },
          )
        }
      }
      try {
        const admin = await connectAdmin({ config })
        const kv = await connect({ config })
        await admin.join({ "100": groups["100"] })
        const keys = Array.from({ length: 20 }, (_, i) => `k${i}`)
        const values = keys.map(() => String(random.int(1_000_000)))
        for (let i = 0; i < keys.length; i++) await kv.put(keys[i]!, values[i]!)
        await admin.join({ "101": groups["101"] })
        for (let i = 0; i < keys.length; i++) expect(await kv.get(keys[i]!)).toBe(values[i]!)
        const { num } = await admin.query(-1)

        // The stranger has no key; it asks each replica about each shard, at this configuration and the one before.
        const stranger = await rpcNode()
        const replicas = Object.values(groups).flat()
        const sent = { pulls: 0, deletes: 0, installed: 0 }
        const answers: string[] = []
        const options = { attemptTimeoutMs: 200, deadlineMs: 800 }
        await Promise.all(
          replicas.flatMap((replica) =>
            Array.from({ length: 10 }, (_, shard) =>
              Effect.runPromise(
                Effect.gen(function* () {
                  for (const configNum of [num - 1, num]) {
                    const request = { configNum, toConfigNum: num, shard }
                    sent.pulls++
                    const pull = yield* stranger
                      .call(replica, ShardPullMethod, { ...request, offset: 0 }, options)
                      .pipe(
                        Effect.map((r) => (r.ok ? "data" : r.error)),
                        Effect.orElseSucceed(() => "no answer"),
                      )
                    sent.deletes++
                    const del = yield* stranger.call(replica, ShardDeleteMethod, request, options).pipe(
                      Effect.map((r) => (r.ok ? "deleted" : r.error)),
                      Effect.orElseSucceed(() => "no answer"),
                    )
                    sent.installed++
                    const installed = yield* stranger
                      .call(replica, ShardInstalledMethod, { configNum, shard }, options)
                      .pipe(
                        Effect.map(() => "answered"),
                        Effect.orElseSucceed(() => "no answer"),
                      )
                    answers.push(pull, del, installed)
                  }
                }),
              ),
            ),
          ),
        )
        const tally: Record<string, number> = {}
        for (const a of answers) tally[a] = (tally[a] ?? 0) + 1
        console.log(`forged ${JSON.stringify(sent)}; answers ${JSON.stringify(tally)}`)
        expect(tally.data ?? 0).toBe(0)
        if (keyed) expect(tally["no answer"]).toBe(answers.length)
        else expect(tally.Refused ?? 0).toBeGreaterThan(0)

        for (let i = 0; i < keys.length; i++) expect(await kv.get(keys[i]!)).toBe(values[i]!)
        for (const key of keys) await kv.append(key, "+")
        for (let i = 0; i < keys.length; i++) expect(await kv.get(keys[i]!)).toBe(`${values[i]!}+`)
        await kv.close()
        await admin.close()
      } finally {
        for (const name of names) await processes.kill(name)
      }
    }, 120_000)
  }
})
