/**
 * Proves that the systemd units in deploy/systemd are valid units (`systemd-analyze verify` on an
 * instance of each, with ExecStart pointed at stand-in executables), and that the shard-group
 * unit's instance name GID-REPLICA becomes `--gid GID --replica REPLICA`, by running its ExecStart
 * line as systemd would (specifiers expanded, `$$` unescaped) with a stand-in that prints its
 * arguments.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { chmodSync, readFileSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { runCommand, tempDir } from "@kv/testkit"

const root = resolve(import.meta.dir, "../../..")
const units = join(root, "deploy/systemd")
const dir = tempDir("kv-systemd")
afterAll(() => dir.remove())

const standIn = (name: string): string => {
  const path = join(dir.path, name)
  writeFileSync(path, '#!/bin/sh\necho "$@"\n')
  chmodSync(path, 0o755)
  return path
}

describe("systemd units", () => {
  test("every unit verifies", async () => {
    const which = await runCommand(["sh", "-c", "command -v systemd-analyze"], { timeoutMs: 5_000 })
    if (which.code !== 0) throw new Error("systemd-analyze is missing: apt-get install -y systemd")
    for (const unit of ["kv-kvraft@.service", "kv-shardctrler@.service", "kv-shardkv@.service"]) {
      const text = readFileSync(join(units, unit), "utf8").replaceAll(
        /\/usr\/local\/bin\/(kv-[a-z]+)/g,
        (_, name: string) => standIn(name),
      )
      writeFileSync(join(dir.path, unit), text)
    }
    const instances = ["kv-kvraft@0.service", "kv-shardctrler@1.service", "kv-shardkv@100-2.service"]
    const verified = await runCommand(["systemd-analyze", "verify", ...instances.map((i) => join(dir.path, i))], {
      cwd: dir.path,
      timeoutMs: 30_000,
    })
    // Only complaints about the environment (no kv user on this machine) may remain.
    const problems = `${verified.stdout}${verified.stderr}`
      .split("\n")
      .filter((line) => line.trim() !== "" && !/User=|Group=|user kv|group kv/i.test(line))
    expect(problems).toEqual([])
    expect(verified.code).toBe(0)
  }, 60_000)

  test("the shard-group unit turns its instance GID-REPLICA into --gid and --replica", async () => {
    const unit = readFileSync(join(units, "kv-shardkv@.service"), "utf8")
    const execStart = unit
      .split("\n")
      .find((line) => line.startsWith("ExecStart="))!
      .slice("ExecStart=".length)
    // As systemd runs it for kv-shardkv@100-2: %i expanded, $$ unescaped, the quoted script to sh -c.
    const expanded = execStart
      .replaceAll("%i", "100-2")
      .replaceAll("$$", "$")
      .replace("/usr/local/bin/kv-shardkv", standIn("kv-shardkv"))
    const script = expanded.slice(expanded.indexOf("'") + 1, expanded.lastIndexOf("'"))
    const ran = await runCommand(["/bin/sh", "-c", script], { timeoutMs: 5_000 })
    expect(ran.stdout.trim()).toBe("--gid 100 --replica 2 --config /etc/kv/cluster.toml")
  })
})
