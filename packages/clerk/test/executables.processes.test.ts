/**
 * Proves that `bun run build` makes single-file executables that run a cluster with nothing else
 * installed beside them: the three server binaries and the `kv` binary, copied into an empty
 * directory with a cluster.toml, start a kvraft group, a controller and a shard group; `kv` joins
 * the group, writes and reads on both services and reports every replica up in `kv status`.
 * Bad arguments to the build script exit 2 with its usage.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { copyFileSync, existsSync } from "node:fs"
import { join, resolve } from "node:path"
import { freeUdpPorts, ProcessGroup, pollUntil, runCommand, tempDir, writeFile } from "@kv/testkit"

const root = resolve(import.meta.dir, "../../..")
const processes = new ProcessGroup()
const build = tempDir("kv-build")
const host = tempDir("kv-host")

afterAll(async () => {
  await processes.stopAll({ signal: "SIGTERM", graceMs: 10_000 })
  build.remove()
  host.remove()
})

describe("single-file executables", () => {
  test("bun run build makes servers and kv that run a cluster from an empty directory", async () => {
    const built = await runCommand(["bun", "run", "build", "--outdir", build.path], { cwd: root, timeoutMs: 120_000 })
    expect(built.code).toBe(0)
    for (const name of ["kv", "kv-kvraft", "kv-shardctrler", "kv-shardkv"]) {
      expect(existsSync(join(build.path, name))).toBe(true)
      // Nothing of the repository comes along: only the file itself.
      copyFileSync(join(build.path, name), join(host.path, name))
      await runCommand(["chmod", "+x", join(host.path, name)], { timeoutMs: 5_000 })
    }
    const ports = (await freeUdpPorts(7)).map((p) => `127.0.0.1:${p}`)
    writeFile(
      join(host.path, "cluster.toml"),
      [
        `dataDir = "./data"`,
        `[kvraft]`,
        `replicas = ${JSON.stringify(ports.slice(0, 3))}`,
        `[controller]`,
        `replicas = ${JSON.stringify(ports.slice(3, 4))}`,
        `[groups.100]`,
        `replicas = ${JSON.stringify(ports.slice(4, 7))}`,
        "",
      ].join("\n"),
    )
    const bin = (name: string) => join(host.path, name)
    const env = { KV_CLUSTER_KEY: "executables-test-key" }
    for (let k = 0; k < 3; k++) {
      processes.start(`kvraft-${k}`, [bin("kv-kvraft"), "--replica", String(k), "--config", "cluster.toml"], {
        cwd: host.path,
        env,
      })
      processes.start(
        `g100-${k}`,
        [bin("kv-shardkv"), "--gid", "100", "--replica", String(k), "--config", "cluster.toml"],
        {
          cwd: host.path,
          env,
        },
      )
    }
    processes.start("ctrl", [bin("kv-shardctrler"), "--replica", "0", "--config", "cluster.toml"], {
      cwd: host.path,
      env,
    })
    const kv = (...args: string[]) =>
      runCommand([bin("kv"), ...args, "--config", "cluster.toml"], { cwd: host.path, env, timeoutMs: 30_000 })
    await pollUntil(
      "the controller to take the join",
      async () => ((await kv("admin", "join", "100")).code === 0 ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 500 },
    )
    expect((await kv("put", "greeting", "hello")).code).toBe(0)
    expect((await kv("get", "greeting")).stdout.trim()).toBe("hello")
    expect((await kv("put", "--service", "kvraft", "k", "v")).code).toBe(0)
    expect((await kv("get", "--service", "kvraft", "k")).stdout.trim()).toBe("v")
    const status = await kv("status", "--json")
    expect(status.code).toBe(0)
    const replicas = (JSON.parse(status.stdout) as { replicas: { up: boolean }[] }).replicas
    expect(replicas.length).toBe(7)
    expect(replicas.every((r) => r.up)).toBe(true)
  }, 180_000)

  test("the build script refuses unknown names and flags with its usage", async () => {
    const unknown = await runCommand(["bun", "run", "build", "nope"], { cwd: root, timeoutMs: 30_000 })
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("no executable named nope")
    const flag = await runCommand(["bun", "run", "build", "--bogus"], { cwd: root, timeoutMs: 30_000 })
    expect(flag.code).toBe(2)
    expect(flag.stderr).toContain("usage: bun run build")
  }, 60_000)
})
