/**
 * Proves the checks a server makes at start: a second server on a data directory that a running
 * server holds refuses to start and names the holder (even on other ports), while a lock left by a
 * killed server is taken over; a disk slower than the fsync threshold is warned about in the log.
 * Also the lock and the fsync summary on their own.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { existsSync, writeFileSync } from "node:fs"
import { hostname } from "node:os"
import { join } from "node:path"
import { freeUdpPorts, ProcessGroup, pollUntil, runCommand, tempDir, writeFile } from "@kv/testkit"
import { DataDirHeld, takeLock } from "../src/process/dataDirLock.ts"
import { fsyncWarning, summarize } from "../src/process/diskCheck.ts"

const BIN = join(import.meta.dir, "../bin/kvraft.ts")
const processes = new ProcessGroup()
const dir = tempDir("kvraft-startup-checks")

afterAll(async () => {
  await processes.killAll()
  dir.remove()
})

const configOn = async (name: string, dataDir: string) => {
  const ports = await freeUdpPorts(3)
  const path = join(dir.path, `${name}.toml`)
  writeFile(
    path,
    `dataDir = "${dataDir}"\n[kvraft]\nreplicas = ${JSON.stringify(ports.map((p) => `127.0.0.1:${p}`))}\n`,
  )
  return path
}

describe("the data directory lock", () => {
  test("a second server on a held data directory refuses to start; a dead server's lock is taken over", async () => {
    const first = await configOn("first", "./shared")
    const second = await configOn("second", "./shared")
    processes.start("holder", ["bun", BIN, "--replica", "0", "--config", first], { cwd: dir.path })
    await pollUntil(
      "the first server to hold its directory",
      async () => (processes.output("holder").includes("replica started") ? true : undefined),
      { timeoutMs: 20_000 },
    )
    const refused = await runCommand(["bun", BIN, "--replica", "0", "--config", second], {
      cwd: dir.path,
      timeoutMs: 20_000,
    })
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain("is in use by process")
    expect(refused.stderr).toContain("another server is running on this data directory")
    // kill -9 leaves the lock file behind: the next server takes it over.
    await processes.kill("holder")
    expect(existsSync(join(dir.path, "shared", "kvraft", "replica-0.lock"))).toBe(true)
    processes.start("successor", ["bun", BIN, "--replica", "0", "--config", second], { cwd: dir.path })
    await pollUntil(
      "the second server to start on the same directory",
      async () => (processes.output("successor").includes("replica started") ? true : undefined),
      { timeoutMs: 20_000 },
    )
  }, 60_000)

  test("takeLock refuses a live holder and is free again once released; a dead holder's file is no obstacle", () => {
    const path = join(dir.path, "unit", "x.lock")
    const release = takeLock(path, "x")
    expect(() => takeLock(path, "x")).toThrow(DataDirHeld)
    release()
    takeLock(path, "x")()
    // A file naming a process that is gone (or garbage, from a crash while writing it) holds nothing.
    writeFileSync(path, JSON.stringify({ pid: 2 ** 30, started: "1", host: hostname() }))
    takeLock(path, "x")()
    writeFileSync(path, "{")
    takeLock(path, "x")()
  })

  test("a held lock stays held whatever its file says: a second process is refused even when the file names a dead process", async () => {
    // What a racing process could see for an instant (the holder has not written its name yet, or
    // another racer rewrote it): the lock must not depend on it.
    const path = join(dir.path, "held", "x.lock")
    const script = join(dir.path, "hold.ts")
    writeFileSync(
      script,
      `import { takeLock } from ${JSON.stringify(join(import.meta.dir, "../src/process/dataDirLock.ts"))}
try { takeLock(${JSON.stringify(path)}, "dir"); console.log("took"); await Bun.sleep(Number(process.argv[2])) } catch { console.log("refused") }
`,
    )
    const holder = processes.start("lock-holder", ["bun", script, "5000"], { cwd: dir.path })
    await pollUntil("the holder to take the lock", async () => (holder.output().includes("took") ? true : undefined), {
      timeoutMs: 20_000,
    })
    writeFileSync(path, JSON.stringify({ pid: 2 ** 30, started: "1", host: hostname() }))
    const second = await runCommand(["bun", script, "0"], { cwd: dir.path, timeoutMs: 20_000 })
    expect(second.stdout.trim()).toBe("refused")
    expect(() => takeLock(path, "x")).toThrow(DataDirHeld)
    await processes.kill("lock-holder")
    // Its death released the lock at once.
    takeLock(path, "x")()
  }, 60_000)
})

describe("the disk check", () => {
  test("a server warns at start when fdatasync is slower than the threshold", async () => {
    const config = await configOn("slow", "./slowdisk")
    processes.start("slow", ["bun", BIN, "--replica", "0", "--config", config], {
      cwd: dir.path,
      env: { KV_FSYNC_WARN_MS: "0" },
    })
    await pollUntil(
      "the slow-disk warning",
      async () => (processes.output("slow").includes("is slow for Raft") ? true : undefined),
      { timeoutMs: 20_000 },
    )
    await processes.kill("slow")
    const fast = await configOn("fast", "./fastdisk")
    processes.start("fast", ["bun", BIN, "--replica", "0", "--config", fast], {
      cwd: dir.path,
      env: { KV_FSYNC_WARN_MS: "100000" },
    })
    await pollUntil(
      "the disk-checked line",
      async () => (processes.output("fast").includes("disk checked") ? true : undefined),
      { timeoutMs: 20_000 },
    )
    expect(processes.output("fast")).not.toContain("is slow for Raft")
  }, 60_000)

  test("the summary and the warning", () => {
    // One slow sample among many is no verdict; a slow tenth is.
    const oneSlow = summarize([...Array.from({ length: 39 }, () => 1), 50])
    expect(oneSlow).toEqual({ samples: 40, p50Ms: 1, p90Ms: 1, maxMs: 50 })
    expect(fsyncWarning("/d", oneSlow, 10)).toBeUndefined()
    const slow = summarize([...Array.from({ length: 35 }, () => 1), 20, 20, 20, 20, 50])
    expect(slow.p90Ms).toBe(20)
    expect(fsyncWarning("/d", slow, 10)).toContain("fdatasync p90 20.0 ms")
  })
})
