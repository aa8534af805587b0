/**
 * Proves that docs/operations.md "Running across machines" works as written, on three hosts that
 * are network namespaces with addresses of their own: the executables `bun run build` makes, the
 * documented cluster.toml (its 10.0.0.x addresses mapped to the hosts' addresses, its paths to
 * each host's own directories), a key file as documented, and each server started by the
 * ExecStart line of its unit in deploy/systemd for the documented instances. Then, from the first
 * host, the documented `kv admin join 100`, `kv put` and `kv status` work, every replica is up,
 * and a client on the third host reads the value.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { NetLab } from "@kv/netlab"
import { ProcessGroup, pollUntil, runCommand, tempDir } from "@kv/testkit"

const root = resolve(import.meta.dir, "../../..")
const docs = readFileSync(join(root, "docs/operations.md"), "utf8")
const processes = new ProcessGroup()
const dir = tempDir("kv-across-machines")
let lab: NetLab | undefined

afterAll(async () => {
  await processes.stopAll({ signal: "SIGTERM", graceMs: 10_000 })
  lab?.destroy()
  dir.remove()
})

/** The fenced block after `marker` in the docs. */
const documentedBlock = (marker: string): string => {
  const at = docs.indexOf(marker)
  if (at < 0) throw new Error(`docs/operations.md has no ${marker}`)
  const open = docs.indexOf("```", at)
  const start = docs.indexOf("\n", open) + 1
  return docs.slice(start, docs.indexOf("```", start))
}

/** The unit's ExecStart for `instance`, as systemd runs it: specifiers expanded, `$$` unescaped. */
const execStart = (unit: string, instance: string, bin: string, config: string): string[] => {
  const text = readFileSync(join(root, "deploy/systemd", unit), "utf8")
  const line = text
    .split("\n")
    .find((l) => l.startsWith("ExecStart="))!
    .slice("ExecStart=".length)
    .replaceAll("%i", instance)
    .replaceAll("$$", "$")
    .replaceAll("/usr/local/bin/", `${bin}/`)
    .replaceAll("/etc/kv/cluster.toml", config)
  const quoted = line.indexOf("'")
  if (quoted >= 0) return [...line.slice(0, quoted).trim().split(/\s+/), line.slice(quoted + 1, line.lastIndexOf("'"))]
  return line.split(/\s+/)
}

describe("running across machines, as docs/operations.md says", () => {
  test("three hosts run the documented cluster from the executables and units; kv works from any host", async () => {
    const bin = join(dir.path, "usr-local-bin")
    const built = await runCommand(["bun", "run", "build", "--outdir", bin], { cwd: root, timeoutMs: 120_000 })
    expect(built.code).toBe(0)
    lab = NetLab.create({ hosts: 3 })
    const hosts = lab.hosts
    const documented = documentedBlock("<!-- cluster.toml: running across machines -->")
    expect(documented).toContain('clusterKeyFile = "/etc/kv/cluster.key"')
    // The key, as documented (`head -c 32 /dev/urandom | base64`), mode 0600.
    const keyFile = join(dir.path, "cluster.key")
    writeFileSync(keyFile, `${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}\n`)
    chmodSync(keyFile, 0o600)
    const configOf = (k: number): string => {
      const hostDir = join(dir.path, `host-${k}`)
      mkdirSync(join(hostDir, "var-lib-kv"), { recursive: true })
      const text = documented
        .replaceAll(/10\.0\.0\.(\d)/g, (_, n: string) => hosts[Number(n) - 1]!.address)
        .replace('"/var/lib/kv"', JSON.stringify(join(hostDir, "var-lib-kv")))
        .replace('"/etc/kv/cluster.key"', JSON.stringify(keyFile))
      const path = join(hostDir, "cluster.toml")
      writeFileSync(path, text)
      return path
    }
    const configs = hosts.map((h) => configOf(h.index))
    for (const host of hosts) {
      const n = String(host.index)
      const config = configs[host.index]!
      for (const [unit, instance] of [
        ["kv-kvraft@.service", n],
        ["kv-shardctrler@.service", n],
        ["kv-shardkv@.service", `100-${n}`],
      ] as const) {
        lab.start(processes, `${unit.split("@")[0]}-${instance}`, host.index, execStart(unit, instance, bin, config), {
          cwd: dir.path,
          env: { KV_CLUSTER_KEY: undefined },
        })
      }
    }
    const kvOn = (k: number, ...args: string[]) =>
      runCommand(lab!.exec(k, [join(bin, "kv"), ...args, "--config", configs[k]!]), {
        cwd: dir.path,
        env: { KV_CLUSTER_KEY: undefined },
        timeoutMs: 30_000,
      })
    let lastJoin = ""
    try {
      await pollUntil(
        "kv admin join 100 to be taken",
        async () => {
          const joined = await kvOn(0, "admin", "join", "100")
          lastJoin = `${joined.stdout}${joined.stderr}`
          return joined.code === 0 ? true : undefined
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      )
    } catch (error) {
      console.error(`last kv admin join: ${lastJoin}`)
      for (const name of ["kv-kvraft-0", "kv-shardctrler-0", "kv-shardkv-100-0"]) {
        console.error(`--- ${name}\n${processes.output(name).slice(-3_000)}`)
      }
      throw error
    }
    expect((await kvOn(0, "put", "greeting", "hello")).code).toBe(0)
    const status = await kvOn(0, "status", "--json")
    expect(status.code).toBe(0)
    const replicas = (JSON.parse(status.stdout) as { replicas: { address: string; up: boolean }[] }).replicas
    expect(replicas.length).toBe(9)
    expect(replicas.filter((r) => !r.up)).toEqual([])
    expect(new Set(replicas.map((r) => r.address.split(":")[0]))).toEqual(new Set(hosts.map((h) => h.address)))
    expect((await kvOn(2, "get", "greeting")).stdout.trim()).toBe("hello")
  }, 180_000)
})
