/**
 * Proves that only admin client keys change the shard configuration: three controller processes
 * with a server key and read-only, read-write and admin client keys. Every role may query; join,
 * move and leave from a read-write (or read-only) key fail at once with PermissionDenied and change
 * nothing; the admin's go through.
 */
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import { RpcNode, type RpcNodeShape, Transport } from "@kv/rpc"
import { freeUdpPorts, processFixture, writeFile } from "@kv/testkit"
import { Context, Effect, Layer } from "effect"
import { makeControllerClient } from "../src/index.ts"

const BIN = join(import.meta.dir, "../bin/shardctrler.ts")
const { processes, dir, scope } = processFixture("shardctrler-roles")

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)
const failureOf = <A, E>(effect: Effect.Effect<A, E>): Promise<E> => run(Effect.flip(effect))

const keyedNode = (key: string): Promise<RpcNodeShape> =>
  Effect.runPromise(
    Layer.buildWithScope(
      RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0", key }))),
      scope,
    ).pipe(Effect.map((context) => Context.get(context, RpcNode))),
  )

const KEYS = { server: "controller secret", reader: "reader secret", writer: "writer secret", admin: "admin secret" }

describe("controller roles over real processes", () => {
  test("join, move and leave need an admin key; every role may query", async () => {
    const ports = await freeUdpPorts(3)
    const controllers = ports.map((p) => `127.0.0.1:${p}`)
    for (const [name, key] of Object.entries(KEYS)) writeFile(join(dir.path, `${name}.key`), `${key}\n`)
    const config = join(dir.path, "cluster.toml")
    writeFile(
      config,
      `dataDir = "./data"
clusterKeyFile = "server.key"
[controller]
replicas = ${JSON.stringify(controllers)}

[[clientKeys]]
role = "read-only"
keyFile = "reader.key"

[[clientKeys]]
role = "read-write"
keyFile = "writer.key"

[[clientKeys]]
role = "admin"
keyFile = "admin.key"
`,
    )
    for (let k = 0; k < 3; k++) {
      processes.start(`controller-${k}`, ["bun", BIN, "--replica", String(k), "--config", config], { cwd: dir.path })
    }
    const clientOf = async (key: string) =>
      run(makeControllerClient(await keyedNode(key), { controllers, deadlineMs: 20_000 }))
    const [reader, writer, admin] = await Promise.all([KEYS.reader, KEYS.writer, KEYS.admin].map(clientOf))

    await run(admin!.join({ "100": ["127.0.0.1:1"] }))
    const started = Date.now()
    for (const client of [writer!, reader!]) {
      expect((await failureOf(client.join({ "101": ["127.0.0.1:2"] })))._tag).toBe("PermissionDenied")
      expect((await failureOf(client.move(0, 101)))._tag).toBe("PermissionDenied")
      expect((await failureOf(client.leave([100])))._tag).toBe("PermissionDenied")
    }
    // Refused by the first server asked, not after the deadline.
    expect(Date.now() - started).toBeLessThan(10_000)
    for (const client of [reader!, writer!, admin!]) {
      const latest = await run(client.query(-1))
      expect(latest.num).toBe(1)
      expect(Object.keys(latest.groups)).toEqual(["100"])
    }
    await run(admin!.leave([100]))
    expect((await run(reader!.query(-1))).num).toBe(2)
  }, 60_000)
})
