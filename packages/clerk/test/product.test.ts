/**
 * Proves that the product works the way the README says, with real processes: the quick start
 * verbatim, `kv` against the running cluster, `kv status` (human and --json) reporting a killed
 * replica and the new leader, the metrics endpoint, a full restart keeping the data, and clear
 * messages for bad configurations. And that the default cluster is authenticated out of the box:
 * `bun run cluster` creates a key in its data directory on the first start (mode 0600) and keeps
 * it on the next; its servers drop datagrams without the key, while `bun run kv`, the documented
 * examples and `connect({ config })` find the key themselves.
 *
 * One cluster serves all of it (15 replica processes started twice are most of this file's time):
 * the CLI checks each command's behaviour once, bulk reads and writes go through one client.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { RaftStatusMethod } from "@kv/raft"
import { RpcNode, type RpcNodeShape, Transport } from "@kv/rpc"
import { shardOf } from "@kv/shardctrler"
import { type Launched, ProcessGroup, pollUntil, runCommand, tempDir, writeFile } from "@kv/testkit"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { type Clerk, connect } from "../src/index.ts"

const root = resolve(import.meta.dir, "../../..")
const dir = tempDir("kv-product")
// The repository's own cluster.toml, unchanged; copied so that its ./data lands in the temp dir.
const config = join(dir.path, "cluster.toml")
copyFileSync(join(root, "cluster.toml"), config)
const keyPath = join(dir.path, "data", "cluster.key")
const processes = new ProcessGroup()
// A user's shell has no KV_CLUSTER_KEY: the cluster, the CLI and the clients must find the generated key.
const withoutKey = { KV_CLUSTER_KEY: undefined }
const previousKey = process.env.KV_CLUSTER_KEY
const closers: (() => Promise<void>)[] = []

beforeAll(() => {
  delete process.env.KV_CLUSTER_KEY
})

afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => {})
  // SIGINT lets the script stop its replicas; they also stop by themselves once it is gone.
  await processes.stopAll({ signal: "SIGINT", graceMs: 15_000 })
  if (previousKey !== undefined) process.env.KV_CLUSTER_KEY = previousKey
  dir.remove()
})

let cluster: Launched | undefined

/** `bun run cluster` on the copied cluster.toml, until it says it is ready; what it printed. */
const startCluster = async (): Promise<string> => {
  cluster = processes.start("cluster", ["bun", "run", "cluster", "--config", config], { cwd: root, env: withoutKey })
  await cluster.waitForOutput("Ctrl-C stops the cluster", 90_000)
  return cluster.output()
}

/** Ctrl-C; the script's exit code. */
const stopCluster = (): Promise<number> => cluster!.stop({ signal: "SIGINT", graceMs: 30_000 })

const kv = (...args: string[]) =>
  runCommand(["bun", "run", "kv", ...args, "--config", config], { cwd: root, env: withoutKey, timeoutMs: 60_000 })

/** `connect({ config })`, closed at the end of the file. */
const clerk = async (): Promise<Clerk> => {
  const client = await connect({ config, deadlineMs: 30_000 })
  closers.push(() => client.close())
  return client
}

/** A client RpcNode that signs its datagrams with `key` (or not at all), closed at the end of the file. */
const udpNode = (key: string | undefined): Promise<RpcNodeShape> => {
  const scope = Effect.runSync(Scope.make())
  closers.push(() => Effect.runPromise(Scope.close(scope, Exit.void)))
  return Effect.runPromise(
    Layer.buildWithScope(
      RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0", key }))),
      scope,
    ).pipe(Effect.map((context) => Context.get(context, RpcNode))),
  )
}

interface StatusJson {
  replicas: { service: string; replica: number; address: string; up: boolean; role?: string; leader?: string }[]
  shards: Record<string, number[]>
  configNum?: number
}

const statusJson = async () => {
  const reply = await kv("status", "--json")
  return { code: reply.code, status: JSON.parse(reply.stdout) as StatusJson }
}

/**
 * What the examples marked `<!-- runnable: NAME -->` in docs/client.md print (their own comments
 * say so too): the lock-free counter, create-if-absent, the membership directory, the Effect API,
 * a watch, a lease, a lock's fencing token refusing a stalled holder, an election and a lock in an
 * Effect app.
 */
const expectedDocOutput: Record<string, string> = {
  counter: "20",
  "create-if-absent": "true false ann",
  directory: 'web-1 10.0.0.1:80\nweb-3 10.0.0.3:80\n[ "{members}/web/web-1" ] {members}/web/web-1',
  effect: 'true false worker-a\n[ "{queue}/task-1", "{queue}/task-3" ]\nCrossShard: give the keys one hash tag',
  watch: "put {orders}/17 placed\nput {orders}/17 paid\ndelete {orders}/17",
  lease: '[ "workers/w1" ]\nundefined',
  fencing: "true\ntrue\nfalse\nunrenewed",
  election: "node-1:9090\nnode-2:8080 true\nfalse",
  "effect-lock": "migrated: true, held after: false",
}

/** Every TypeScript example in docs/client.md, run as pasted (at once: they touch different keys). */
const runDocExamples = async () => {
  const examples = [
    ...readFileSync(join(root, "docs/client.md"), "utf8").matchAll(
      /(?:<!-- runnable: ([\w-]+) -->\n)?```ts\n([\s\S]*?)```/g,
    ),
  ].map(([, name, code]) => ({ name, code: code! }))
  expect(examples.length).toBeGreaterThanOrEqual(4)
  expect(examples.flatMap(({ name }) => (name === undefined ? [] : [name])).sort()).toEqual(
    Object.keys(expectedDocOutput).sort(),
  )
  mkdirSync(join(root, ".tmp"), { recursive: true })
  const outputs = await Promise.all(
    examples.map(async ({ name, code }, i) => {
      const file = join(root, ".tmp", `client-doc-example-${process.pid}-${i}.ts`)
      writeFileSync(file, code)
      try {
        // Run beside the copied cluster.toml, whose data directory holds the key the cluster generated.
        const run = await runCommand(["bun", file], { cwd: dir.path, env: withoutKey, timeoutMs: 60_000 })
        if (run.code !== 0)
          throw new Error(`docs/client.md example ${i} failed:\n${code}\n${run.stdout}\n${run.stderr}`)
        if (name !== undefined) expect({ name, output: run.stdout }).toEqual({ name, output: expectedDocOutput[name]! })
        return run.stdout
      } finally {
        rmSync(file)
      }
    }),
  )
  expect(outputs[0]).toContain("hello, world")
}

describe("the product, as a new user meets it", () => {
  test("quick start, kv, status, metrics, the generated key, a killed replica, a full restart, every group leaving", async () => {
    const first = await startCluster()
    expect(first).toContain("running:")
    // The first start creates the cluster key, readable by its owner only.
    expect(first).toContain(`created the cluster key ${keyPath}`)
    expect(statSync(keyPath).mode & 0o777).toBe(0o600)
    const key = readFileSync(keyPath, "utf8").trim()
    expect(key.length).toBeGreaterThanOrEqual(32)

    // The CLI finds the key on its own; so do the documented examples, and connect({ config }).
    // Independent sequences run side by side (each CLI call is a process start, mostly CPU).
    const client = await clerk()
    await Promise.all([
      (async () => {
        expect(await kv("put", "hello", "world")).toMatchObject({ code: 0 })
        expect(await kv("get", "hello")).toMatchObject({ stdout: "world", code: 0 })
        expect(await kv("append", "hello", "!")).toMatchObject({ code: 0 })
        expect((await kv("get", "hello", "--json")).stdout).toBe(
          JSON.stringify({ ok: true, key: "hello", value: "world!", found: true }),
        )
      })(),
      (async () => {
        expect((await kv("get", "absent-key")).code).toBe(1)
        const refused = await kv("admin", "leave", "999")
        expect(refused.code).toBe(4)
        expect(refused.stderr).toContain("999")
      })(),
      (async () => {
        expect(await kv("put", "kv-only", "1", "--service", "kvraft")).toMatchObject({ code: 0 })
        expect((await kv("get", "kv-only", "--service", "kvraft")).stdout).toBe("1")
      })(),
      runDocExamples(),
      (async () => {
        await client.put("connect", "found the key")
        expect(await client.get("connect")).toBe("found the key")
      })(),
    ])

    const { status } = await statusJson()
    expect(status.replicas.length).toBe(15)
    expect(status.replicas.every((r) => r.up)).toBe(true)
    expect(Object.keys(status.shards).sort()).toEqual(["100", "101", "102"])

    // Without the key no replica answers (nothing even reaches the stranger); with it every one does.
    const anonymous = await udpNode(undefined)
    const keyed = await udpNode(key)
    const raftStatus = (node: RpcNodeShape, address: string) =>
      Effect.runPromise(
        Effect.exit(node.call(address, RaftStatusMethod, {}, { attemptTimeoutMs: 100, deadlineMs: 600 })),
      )
    await Promise.all(
      status.replicas.map(async ({ address }) => {
        expect(Exit.isSuccess(await raftStatus(keyed, address))).toBe(true)
        const ignored = await raftStatus(anonymous, address)
        expect(Exit.isFailure(ignored) && JSON.stringify(ignored.cause)).toContain("Timeout")
      }),
    )
    expect(anonymous.transport.stats.datagramsReceived).toBe(0)

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
    const group100 = status.replicas.filter((r) => r.service === "group 100")
    const leader = group100.find((r) => r.role === "leader")!
    const pid = Number(
      new RegExp(`group 100\\s+replica ${leader.replica}\\s+udp://\\S+\\s+pid (\\d+)`).exec(first)?.[1],
    )
    expect(pid).toBeGreaterThan(0)
    process.kill(pid, "SIGKILL")
    // Watched in-process until a new leader is there; then `kv status` has to show it.
    await pollUntil(
      "a new leader of group 100",
      () =>
        Promise.all(
          group100
            .filter((r) => r.replica !== leader.replica)
            .map(async ({ address }) => {
              const reply = await raftStatus(keyed, address)
              return Exit.isSuccess(reply) && reply.value.role === "leader"
            }),
        ).then((leads) => leads.includes(true)),
      { timeoutMs: 15_000, intervalMs: 100 },
    )
    let after: StatusJson | undefined
    await pollUntil(
      "kv status to show the new leader",
      async () => {
        const reply = await statusJson()
        after = reply.status
        const group = after.replicas.filter((r) => r.service === "group 100")
        const newLeader = group.find((r) => r.up && r.role === "leader")
        if (newLeader === undefined) return false
        expect(reply.code).toBe(3) // a replica is down
        expect(group.find((r) => r.replica === leader.replica)?.up).toBe(false)
        expect(newLeader.replica).not.toBe(leader.replica)
        return true
      },
      { timeoutMs: 15_000, intervalMs: 200, stopOn: () => true },
    ).catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(after)}`)
    })
    // Writes still work with one replica of a group gone: from new CLI processes that have to find
    // the new leader among the replicas of group 100, and from the client that knew the old one.
    const nShards = Object.values(status.shards).flat().length
    const onGroup100 = Array.from({ length: 200 }, (_, i) => `cli-after-kill-${i}`)
      .filter((k) => status.shards["100"]!.includes(shardOf(k, nShards)))
      .slice(0, 2)
    expect(onGroup100.length).toBe(2)
    await Promise.all([
      kv("status").then((human) => expect(human.stdout).toContain("DOWN")),
      ...onGroup100.map(async (k) => expect(await kv("put", k, k)).toMatchObject({ code: 0 })),
      (async () => {
        for (let i = 0; i < 20; i++) await client.put(`after-kill-${i}`, String(i))
      })(),
    ])

    // Ctrl-C stops everything cleanly; starting again resumes from ./data with nothing lost, and the same key.
    expect(await stopCluster()).toBe(0)
    const second = await startCluster()
    expect(second).toContain("groups already joined")
    expect(second).toContain(`cluster key ${keyPath}`)
    expect(second).not.toContain("created the cluster key")
    expect(readFileSync(keyPath, "utf8").trim()).toBe(key)
    const again = await clerk()
    await Promise.all([
      kv("get", "hello").then((got) => expect(got.stdout).toBe("world!")),
      kv("get", "kv-only", "--service", "kvraft").then((got) => expect(got.stdout).toBe("1")),
      ...onGroup100.map(async (k) => expect((await kv("get", k)).stdout).toBe(k)),
      (async () => {
        for (let i = 0; i < 20; i++) expect(await again.get(`after-kill-${i}`)).toBe(String(i))
        expect(await again.get("connect")).toBe("found the key")
      })(),
    ])

    // Every group leaves (the last one only with --force), then one joins again: nothing is lost.
    for (let i = 0; i < 30; i++) await again.put(`before-leave-${i}`, String(i))
    expect(await kv("admin", "leave", "100")).toMatchObject({ code: 0 })
    expect(await kv("admin", "leave", "101")).toMatchObject({ code: 0 })
    const last = await kv("admin", "leave", "102")
    expect(last.code).toBe(4)
    expect(last.stderr).toContain("--force")
    expect(await kv("admin", "leave", "102", "--force")).toMatchObject({ code: 0 })
    expect(await kv("admin", "join", "101")).toMatchObject({ code: 0 })
    for (let i = 0; i < 30; i++) expect(await again.get(`before-leave-${i}`)).toBe(String(i))
    expect((await kv("get", "hello")).stdout).toBe("world!")
    for (const close of closers.splice(0).reverse()) await close()
    expect(await stopCluster()).toBe(0)
  }, 240_000)

  test("a bad configuration gives a message naming each problem and exit code 2", async () => {
    const bad = join(dir.path, "bad.toml")
    writeFile(bad, '[controller]\nreplica = ["127.0.0.1:7000"]\n[groups.101]\nreplicas = ["127.0.0.1:99999"]\n')
    const status = await runCommand(["bun", "run", "kv", "status", "--config", bad], { cwd: root, timeoutMs: 30_000 })
    expect(status.code).toBe(2)
    expect(status.stderr).toContain('controller.replica: unknown key (did you mean "replicas"?')
    expect(status.stderr).toContain('groups.101.replicas[0]: "127.0.0.1:99999" is not a valid host:port')
    const server = await runCommand(["bun", "run", "shardkv", "--gid", "999", "--config", config], {
      cwd: root,
      timeoutMs: 30_000,
    })
    expect(server.code).toBe(1)
    expect(server.stderr).toContain("group 999 is not in")
  })
})
