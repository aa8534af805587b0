/**
 * Proves that client roles hold on the sharded service over real processes (a controller and one
 * shard group with a server key and client keys): a read-only client's put fails at once with
 * PermissionDenied (the shard routing does not retry it), a read-write client writes but may not
 * join a group, and no client key may pull or delete a shard (the servers' own messages).
 */
import { describe, expect, test } from "bun:test"
import { join, resolve } from "node:path"
import { RpcNode, type RpcNodeShape, Transport } from "@kv/rpc"
import { ShardDeleteMethod, ShardPullMethod } from "@kv/shardkv"
import { freeUdpPorts, processFixture, writeFile } from "@kv/testkit"
import { Context, Effect, Layer } from "effect"
import { connect, connectAdmin } from "../src/index.ts"

const root = resolve(import.meta.dir, "../../..")
const CONTROLLER = join(root, "packages/shardctrler/bin/shardctrler.ts")
const GROUP = join(root, "packages/shardkv/bin/shardkv.ts")
const { processes, dir, scope } = processFixture("kv-roles-sharded")

const KEYS = { server: "server secret", reader: "reader secret", writer: "writer secret", admin: "admin secret" }

const keyedNode = (key: string): Promise<RpcNodeShape> =>
  Effect.runPromise(
    Layer.buildWithScope(
      RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0", key }))),
      scope,
    ).pipe(Effect.map((context) => Context.get(context, RpcNode))),
  )

const rejection = (promise: Promise<unknown>): Promise<string | undefined> =>
  promise.then(
    () => undefined,
    (error: unknown) => (error as { _tag?: string } | undefined)?._tag,
  )

describe("client roles on the sharded service", () => {
  test("read-only cannot put, read-write cannot join, no client key pulls or deletes a shard", async () => {
    const ports = await freeUdpPorts(6)
    const controllers = ports.slice(0, 3).map((p) => `127.0.0.1:${p}`)
    const group = ports.slice(3).map((p) => `127.0.0.1:${p}`)
    for (const [name, key] of Object.entries(KEYS)) writeFile(join(dir.path, `${name}.key`), `${key}\n`)
    const table = (role: string, file: string) => `\n[[clientKeys]]\nrole = "${role}"\nkeyFile = "${file}"\n`
    const config = join(dir.path, "cluster.toml")
    writeFile(
      config,
      `dataDir = "./data"\nclusterKeyFile = "server.key"\n` +
        `[controller]\nreplicas = ${JSON.stringify(controllers)}\n[groups.100]\nreplicas = ${JSON.stringify(group)}\n` +
        table("read-only", "reader.key") +
        table("read-write", "writer.key") +
        table("admin", "admin.key"),
    )
    processes.start("controller", ["bun", CONTROLLER, "--config", config], { cwd: dir.path })
    processes.start("group-100", ["bun", GROUP, "--gid", "100", "--config", config], { cwd: dir.path })

    const writerAdmin = await connectAdmin({ config, clusterKey: KEYS.writer, deadlineMs: 20_000 })
    const admin = await connectAdmin({ config, clusterKey: KEYS.admin, deadlineMs: 20_000 })
    const writer = await connect({ config, clientKey: KEYS.writer, deadlineMs: 30_000 })
    const reader = await connect({ config, clientKey: KEYS.reader, deadlineMs: 30_000 })
    try {
      expect(await rejection(writerAdmin.join({ "100": group }))).toBe("PermissionDenied")
      await admin.join({ "100": group })
      await writer.put("k", "v")
      expect(await reader.get("k")).toBe("v")
      const started = Date.now()
      expect(await rejection(reader.put("k", "overwritten"))).toBe("PermissionDenied")
      expect(Date.now() - started).toBeLessThan(10_000)
      expect(await reader.get("k")).toBe("v")

      // A shard pull or delete is the servers' business: refused to every client key, admin's too.
      for (const key of [KEYS.writer, KEYS.admin]) {
        const rpc = await keyedNode(key)
        const pull = await Effect.runPromise(
          Effect.flip(rpc.call(group[0]!, ShardPullMethod, { configNum: 1, toConfigNum: 2, shard: 0, offset: 0 })),
        )
        expect(pull._tag).toBe("PermissionDenied")
        const del = await Effect.runPromise(
          Effect.flip(rpc.call(group[0]!, ShardDeleteMethod, { configNum: 1, toConfigNum: 2, shard: 0 })),
        )
        expect(del._tag).toBe("PermissionDenied")
      }
    } finally {
      await Promise.all([writerAdmin.close(), admin.close(), writer.close(), reader.close()])
    }
  }, 90_000)
})
