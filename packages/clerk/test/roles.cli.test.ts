/**
 * Proves that the `kv` CLI and `connect()` use a client's own key: with KV_CLIENT_KEY (CLI) or
 * `clientKey` (clerk) and a cluster.toml whose server key file the client does not have, a
 * read-write client writes, a read-only client reads, and the read-only client's write fails at
 * once: PermissionDenied from connect(), "permission denied" and exit 4 from the CLI.
 */
import { describe, expect, test } from "bun:test"
import { join, resolve } from "node:path"
import { freeUdpPorts, processFixture, runCommand, writeFile } from "@kv/testkit"
import { connect } from "../src/index.ts"

const root = resolve(import.meta.dir, "../../..")
const KV = join(root, "packages/clerk/bin/kv.ts")
const KVRAFT = join(root, "packages/kvraft/bin/kvraft.ts")
const { processes, dir } = processFixture("kv-roles-cli")

const KEYS = { server: "server secret", reader: "reader secret", writer: "writer secret" }

describe("client keys from the CLI and the clerk", () => {
  test("KV_CLIENT_KEY / clientKey: read-write writes, read-only reads and is refused a write", async () => {
    const ports = await freeUdpPorts(3)
    const replicas = ports.map((p) => `127.0.0.1:${p}`)
    for (const [name, key] of Object.entries(KEYS)) writeFile(join(dir.path, `${name}.key`), `${key}\n`)
    const table = (role: string, file: string) => `\n[[clientKeys]]\nrole = "${role}"\nkeyFile = "${file}"\n`
    const servers = join(dir.path, "cluster.toml")
    writeFile(
      servers,
      `dataDir = "./data"\nclusterKeyFile = "server.key"\n[kvraft]\nreplicas = ${JSON.stringify(replicas)}\n` +
        table("read-only", "reader.key") +
        table("read-write", "writer.key"),
    )
    // What a client machine has: the addresses, and a server key file it cannot read.
    const client = join(dir.path, "client.toml")
    writeFile(client, `clusterKeyFile = "not-here.key"\n[kvraft]\nreplicas = ${JSON.stringify(replicas)}\n`)
    for (let k = 0; k < 3; k++) {
      processes.start(`replica-${k}`, ["bun", KVRAFT, "--replica", String(k), "--config", servers], { cwd: dir.path })
    }
    const kv = (key: string, ...args: string[]) =>
      runCommand(["bun", KV, ...args, "--config", client], {
        cwd: root,
        timeoutMs: 60_000,
        env: { KV_CLIENT_KEY: key, KV_CLUSTER_KEY: undefined },
      })

    const put = await kv(KEYS.writer, "put", "greeting", "hello")
    expect(put.code).toBe(0)
    const get = await kv(KEYS.reader, "get", "greeting")
    expect([get.code, get.stdout]).toEqual([0, "hello"])
    const refused = await kv(KEYS.reader, "put", "greeting", "overwritten")
    expect(refused.code).toBe(4)
    expect(refused.stderr).toContain("permission denied")

    const reader = await connect({ config: client, clientKey: KEYS.reader, deadlineMs: 20_000 })
    try {
      expect(await reader.get("greeting")).toBe("hello")
      const error = await reader.put("greeting", "again").then(
        () => undefined,
        (e: unknown) => e,
      )
      expect((error as { _tag?: string } | undefined)?._tag).toBe("PermissionDenied")
    } finally {
      await reader.close()
    }
    expect((await kv(KEYS.writer, "get", "greeting")).stdout).toBe("hello")
  }, 90_000)
})
