/**
 * Proves that a kvraft server explains why it cannot start (port in use, bad config, damaged data
 * directory) with exit code 1, that SIGTERM on a leader hands leadership off and exits 0, and
 * that a replica stopped with a long log tail snapshots it first, so its next start replays none.
 */
import { describe, expect, test } from "bun:test"
import dgram from "node:dgram"
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { RaftStatusMethod } from "@kv/raft"
import { freeUdpPorts, processFixture, runCommand, writeFile } from "@kv/testkit"
import { Effect } from "effect"
import { makeKvClient } from "../src/index.ts"

const BIN = join(import.meta.dir, "../bin/kvraft.ts")
const { processes, dir, rpcNode } = processFixture("kvraft-startup")

const run = (args: string[]) => runCommand(["bun", BIN, ...args], { cwd: dir.path, timeoutMs: 20_000 })

const configWith = async (name: string, top = "") => {
  const ports = await freeUdpPorts(3)
  const replicas = ports.map((p) => `127.0.0.1:${p}`)
  const path = join(dir.path, `${name}.toml`)
  writeFile(path, `dataDir = "./${name}"\n${top}[kvraft]\nreplicas = ${JSON.stringify(replicas)}\n`)
  return { path, replicas }
}

describe("kvraft startup and shutdown", () => {
  test("a port in use is reported with the address", async () => {
    const { path, replicas } = await configWith("busy")
    const port = Number(replicas[0]!.split(":")[1])
    const squatter = dgram.createSocket("udp4")
    await new Promise<void>((resolve) => squatter.bind(port, "127.0.0.1", () => resolve()))
    try {
      const { stderr, code } = await run(["--replica", "0", "--config", path])
      expect(code).toBe(1)
      expect(stderr).toContain(`kvraft: kvraft replica 0 (${replicas[0]}): cannot bind UDP ${replicas[0]}`)
    } finally {
      squatter.close()
    }
  }, 30_000)

  test("a bad config lists its problems; an unknown replica is refused", async () => {
    const bad = join(dir.path, "bad.toml")
    writeFile(bad, `nShards = 0\n[kvraft]\nreplicas = ["nowhere"]\n`)
    const { stderr, code } = await run(["--config", bad])
    expect(code).toBe(1)
    expect(stderr).toContain("nShards")
    expect(stderr).toContain('"nowhere" is not a valid host:port')
    const { path } = await configWith("unknown")
    const unknown = await run(["--replica", "7", "--config", path])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain("there is no replica 7")
  }, 30_000)

  test("a damaged data directory stops the replica from starting, naming the file", async () => {
    const { path, replicas } = await configWith("damaged")
    processes.start("d0", ["bun", BIN, "--replica", "0", "--config", path], { cwd: dir.path })
    processes.start("d1", ["bun", BIN, "--replica", "1", "--config", path], { cwd: dir.path })
    const kv = await Effect.runPromise(makeKvClient(await rpcNode(), { servers: replicas.slice(0, 2) }))
    for (let i = 0; i < 50; i++) await Effect.runPromise(kv.put(`k${i}`, "v".repeat(100)))
    await processes.kill("d0")
    await processes.kill("d1")
    const replicaDir = join(dir.path, "damaged", "kvraft", "replica-0")
    const wal = readdirSync(replicaDir).find((f) => f.startsWith("wal-"))!
    const bytes = readFileSync(join(replicaDir, wal))
    bytes[Math.floor(bytes.length / 3)]! ^= 0xff // a flipped byte well before the tail
    writeFileSync(join(replicaDir, wal), bytes)
    const { stderr, code } = await run(["--replica", "0", "--config", path])
    expect(code).toBe(1)
    expect(stderr).toContain("data directory is damaged")
    expect(stderr).toContain(wal)
  }, 60_000)

  test("SIGTERM on the leader hands leadership to a follower, then exits 0", async () => {
    const { path, replicas } = await configWith("handoff")
    for (let k = 0; k < 3; k++)
      processes.start(`h${k}`, ["bun", BIN, "--replica", String(k), "--config", path], { cwd: dir.path })
    const rpc = await rpcNode()
    const kv = await Effect.runPromise(makeKvClient(rpc, { servers: replicas }))
    await Effect.runPromise(kv.put("a", "1"))
    const status = (k: number) =>
      Effect.runPromise(rpc.call(replicas[k]!, RaftStatusMethod, {}, { deadlineMs: 1_000 }).pipe(Effect.option))
    let leader = -1
    for (let k = 0; k < 3; k++) {
      const s = await status(k)
      if (s._tag === "Some" && s.value.role === "leader") leader = k
    }
    expect(leader).toBeGreaterThanOrEqual(0)
    const before = await status(leader)
    expect(await processes.stop(`h${leader}`)).toBe(0)
    // Another replica leads, in a later term, and the data is there.
    const others = [0, 1, 2].filter((k) => k !== leader)
    const after = await Promise.all(others.map(status))
    const newLeader = after.find((s) => s._tag === "Some" && s.value.role === "leader")
    expect(newLeader?._tag).toBe("Some")
    if (newLeader?._tag === "Some" && before._tag === "Some")
      expect(newLeader.value.term).toBeGreaterThan(before.value.term)
    expect(await Effect.runPromise(kv.get("a"))).toBe("1")
  }, 60_000)

  test("SIGTERM with a log tail past a quarter of the snapshot budget snapshots it first; a short tail does not", async () => {
    const budget = 1 << 20
    const { path, replicas } = await configWith("stopSnapshot", `maxRaftStateBytes = ${budget}\n`)
    const start = (k: number) =>
      processes.start(`s${k}`, ["bun", BIN, "--replica", String(k), "--config", path], { cwd: dir.path })
    for (let k = 0; k < 3; k++) start(k)
    const rpc = await rpcNode()
    const kv = await Effect.runPromise(makeKvClient(rpc, { servers: replicas }))
    const replicaDir = (k: number) => join(dir.path, "stopSnapshot", "kvraft", `replica-${k}`)
    const bytesOf = (k: number, kind: "snap" | "wal") =>
      readdirSync(replicaDir(k))
        .filter((name) => name.startsWith(kind))
        .reduce((total, name) => total + statSync(join(replicaDir(k), name)).size, 0)
    await Effect.runPromise(kv.put("short", "tail"))
    // A short tail: the replica stops without a snapshot.
    expect(await processes.stop("s2")).toBe(0)
    expect(bytesOf(2, "snap")).toBe(0)
    expect(processes.output("s2")).not.toContain("snapshot taken for the next start")
    start(2)
    // 400 KB of values: a tail of more than a quarter of the budget, under the budget (no snapshot yet).
    const value = "v".repeat(4_000)
    for (let i = 0; i < 100; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, j) => Effect.runPromise(kv.put(`k${i + j}`, value))))
    }
    const applied = async (k: number) => {
      const s = await Effect.runPromise(rpc.call(replicas[k]!, RaftStatusMethod, {}, { deadlineMs: 1_000 }))
      return s.commitIndex
    }
    const committed = Math.max(...(await Promise.all([0, 1, 2].map(applied))))
    for (let k = 0; k < 3; k++) {
      while ((await applied(k)) < committed) await Bun.sleep(20)
      expect(bytesOf(k, "snap")).toBe(0)
    }
    for (let k = 0; k < 3; k++) {
      expect(await processes.stop(`s${k}`, 20_000)).toBe(0)
      expect(processes.output(`s${k}`)).toContain("snapshot taken for the next start")
      // The snapshot holds the values; the log after it is a few entries, not the 400 KB.
      expect(bytesOf(k, "snap")).toBeGreaterThan(400_000)
      expect(bytesOf(k, "wal")).toBeLessThan(100_000)
    }
    for (let k = 0; k < 3; k++) start(k)
    const again = await Effect.runPromise(makeKvClient(rpc, { servers: replicas }))
    expect(await Effect.runPromise(again.get("short"))).toBe("tail")
    for (let i = 0; i < 100; i++) expect(await Effect.runPromise(again.get(`k${i}`))).toBe(value)
    await processes.stopAll()
  }, 90_000)
})
