/**
 * Proves that the product works the way the README says, with real processes: the quick start
 * verbatim, `kv` against the running cluster, `kv status` (human and --json) reporting a killed
 * replica and the new leader, the metrics endpoint, a full restart keeping the data, and clear
 * messages for bad configurations.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { tempDir, writeFile } from "@kv/testkit"
import type { Subprocess } from "bun"

const root = resolve(import.meta.dir, "../../..")
const dir = tempDir("kv-product")
// The repository's own cluster.toml, unchanged; copied so that its ./data lands in the temp dir.
const config = join(dir.path, "cluster.toml")
copyFileSync(join(root, "cluster.toml"), config)

let cluster: Subprocess<"ignore", "pipe", "pipe"> | undefined
let clusterOutput = ""

afterAll(async () => {
  if (cluster !== undefined) {
    // SIGINT lets the script stop its replicas; they also stop by themselves once it is gone.
    cluster.kill("SIGINT")
    const timer = setTimeout(() => cluster?.kill("SIGKILL"), 15_000)
    await cluster.exited
    clearTimeout(timer)
  }
  // Any replica the test killed by hand was already gone; the cluster script stops the rest.
  dir.remove()
})

const startCluster = async () => {
  clusterOutput = ""
  const proc = Bun.spawn(["bun", "run", "cluster", "--config", config], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  })
  cluster = proc
  const decoder = new TextDecoder()
  void (async () => {
    for await (const chunk of proc.stderr) clusterOutput += decoder.decode(chunk)
  })()
  const reader = proc.stdout.getReader()
  const deadline = Date.now() + 90_000
  while (!clusterOutput.includes("Ctrl-C stops the cluster")) {
    if (Date.now() > deadline) throw new Error(`cluster did not come up:\n${clusterOutput}`)
    const { value, done } = await reader.read()
    if (done) throw new Error(`cluster exited:\n${clusterOutput}`)
    clusterOutput += decoder.decode(value)
  }
  reader.releaseLock()
  void (async () => {
    for await (const chunk of proc.stdout) clusterOutput += decoder.decode(chunk)
  })()
}

const stopCluster = async (): Promise<number> => {
  const proc = cluster!
  proc.kill("SIGINT")
  const code = await proc.exited
  cluster = undefined
  return code
}

const kv = async (...args: string[]) => {
  const proc = Bun.spawn(["bun", "run", "kv", ...args, "--config", config], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
  })
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  return { stdout: stdout.trim(), stderr: stderr.trim(), code }
}

interface StatusJson {
  replicas: { service: string; replica: number; address: string; up: boolean; role?: string; leader?: string }[]
  shards: Record<string, number[]>
  configNum?: number
}

describe("the product, as a new user meets it", () => {
  test("quick start, kv, status, metrics, a killed replica, a full restart", async () => {
    await startCluster()
    expect(clusterOutput).toContain("running:")

    expect((await kv("put", "hello", "world")).code).toBe(0)
    const got = await kv("get", "hello")
    expect(got).toMatchObject({ stdout: "world", code: 0 })
    expect((await kv("append", "hello", "!")).code).toBe(0)
    expect((await kv("get", "hello", "--json")).stdout).toBe(
      JSON.stringify({ ok: true, key: "hello", value: "world!", found: true }),
    )
    expect((await kv("get", "absent-key")).code).toBe(1)
    const refused = await kv("admin", "leave", "999")
    expect(refused.code).toBe(4)
    expect(refused.stderr).toContain("999")
    expect((await kv("put", "kv-only", "1", "--service", "kvraft")).code).toBe(0)
    expect((await kv("get", "kv-only", "--service", "kvraft")).stdout).toBe("1")

    // Every TypeScript example in docs/client.md runs as pasted against this cluster.
    const examples = [...readFileSync(join(root, "docs/client.md"), "utf8").matchAll(/```ts\n([\s\S]*?)```/g)]
    expect(examples.length).toBeGreaterThanOrEqual(4)
    mkdirSync(join(root, ".tmp"), { recursive: true })
    for (const [i, [, code]] of examples.entries()) {
      const file = join(root, ".tmp", `client-doc-example-${i}.ts`)
      writeFileSync(file, code!)
      // Run beside the copied cluster.toml, whose data directory holds the key the cluster generated.
      const proc = Bun.spawn(["bun", file], { cwd: dir.path, stdout: "pipe", stderr: "pipe" })
      const [out, err, exitCode] = await Promise.all([
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
        proc.exited,
      ])
      rmSync(file)
      if (exitCode !== 0) throw new Error(`docs/client.md example ${i} failed:\n${code}\n${out}\n${err}`)
      if (i === 0) expect(out).toContain("hello, world")
    }

    const status = JSON.parse((await kv("status", "--json")).stdout) as StatusJson
    expect(status.replicas.length).toBe(15)
    expect(status.replicas.every((r) => r.up)).toBe(true)
    expect(Object.keys(status.shards).sort()).toEqual(["100", "101", "102"])

    // Metrics of the first controller replica (basePort in cluster.toml).
    const metrics = await (await fetch("http://127.0.0.1:9100/metrics")).text()
    for (const name of [
      "kv_raft_term",
      "kv_raft_is_leader",
      "kv_raft_commit_index",
      "kv_raft_applied_index",
      "kv_raft_fsync_seconds_bucket",
      "kv_request_seconds_bucket",
      "kv_transport_dropped_datagrams_total",
    ]) {
      expect(metrics).toContain(name)
    }
    expect((await fetch("http://127.0.0.1:9100/livez")).status).toBe(200)
    expect((await fetch("http://127.0.0.1:9100/readyz")).status).toBe(200)

    // kill -9 the leader of group 100: status shows it down and another replica leading.
    const leader = status.replicas.find((r) => r.service === "group 100" && r.role === "leader")!
    const pid = Number(
      new RegExp(`group 100\\s+replica ${leader.replica}\\s+udp://\\S+\\s+pid (\\d+)`).exec(clusterOutput)?.[1],
    )
    expect(pid).toBeGreaterThan(0)
    process.kill(pid, "SIGKILL")
    let after: StatusJson | undefined
    const deadline = Date.now() + 15_000
    for (;;) {
      const reply = await kv("status", "--json")
      after = JSON.parse(reply.stdout) as StatusJson
      const group = after.replicas.filter((r) => r.service === "group 100")
      const newLeader = group.find((r) => r.up && r.role === "leader")
      if (newLeader !== undefined) {
        expect(reply.code).toBe(3) // a replica is down
        expect(group.find((r) => r.replica === leader.replica)?.up).toBe(false)
        expect(newLeader.replica).not.toBe(leader.replica)
        break
      }
      if (Date.now() > deadline) throw new Error(`no new leader: ${JSON.stringify(after)}`)
      await Bun.sleep(200)
    }
    const human = await kv("status")
    expect(human.stdout).toContain("DOWN")
    // Writes still work with one replica of a group gone.
    for (let i = 0; i < 20; i++) expect((await kv("put", `after-kill-${i}`, String(i))).code).toBe(0)

    // Ctrl-C stops everything cleanly; starting again resumes from ./data with nothing lost.
    expect(await stopCluster()).toBe(0)
    await startCluster()
    expect(clusterOutput).toContain("groups already joined")
    expect((await kv("get", "hello")).stdout).toBe("world!")
    for (let i = 0; i < 20; i++) expect((await kv("get", `after-kill-${i}`)).stdout).toBe(String(i))
    expect((await kv("get", "kv-only", "--service", "kvraft")).stdout).toBe("1")

    // Every group leaves (the last one only with --force), then one joins again: nothing is lost.
    for (let i = 0; i < 30; i++) expect((await kv("put", `before-leave-${i}`, String(i))).code).toBe(0)
    expect((await kv("admin", "leave", "100")).code).toBe(0)
    expect((await kv("admin", "leave", "101")).code).toBe(0)
    const last = await kv("admin", "leave", "102")
    expect(last.code).toBe(4)
    expect(last.stderr).toContain("--force")
    expect((await kv("admin", "leave", "102", "--force")).code).toBe(0)
    expect((await kv("admin", "join", "101")).code).toBe(0)
    for (let i = 0; i < 30; i++) expect((await kv("get", `before-leave-${i}`)).stdout).toBe(String(i))
    expect((await kv("get", "hello")).stdout).toBe("world!")
    expect(await stopCluster()).toBe(0)
  }, 240_000)

  test("a bad configuration gives a message naming each problem and exit code 2", async () => {
    const bad = join(dir.path, "bad.toml")
    writeFile(bad, '[controller]\nreplica = ["127.0.0.1:7000"]\n[groups.101]\nreplicas = ["127.0.0.1:99999"]\n')
    const proc = Bun.spawn(["bun", "run", "kv", "status", "--config", bad], {
      cwd: root,
      stderr: "pipe",
      stdout: "pipe",
    })
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited])
    expect(code).toBe(2)
    expect(stderr).toContain('controller.replica: unknown key (did you mean "replicas"?')
    expect(stderr).toContain('groups.101.replicas[0]: "127.0.0.1:99999" is not a valid host:port')
    const server = Bun.spawn(["bun", "run", "shardkv", "--gid", "999", "--config", config], {
      cwd: root,
      stderr: "pipe",
      stdout: "pipe",
    })
    const [serverErr, serverCode] = await Promise.all([new Response(server.stderr).text(), server.exited])
    expect(serverCode).toBe(1)
    expect(serverErr).toContain("group 999 is not in")
  })
})
