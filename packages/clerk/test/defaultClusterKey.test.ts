/**
 * Proves that the default cluster is authenticated out of the box: `bun run cluster` creates a key
 * in its data directory on the first start (mode 0600) and keeps it on the next; its servers drop
 * datagrams without the key, while `bun run kv` and `connect({ config })` find the key themselves.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { readFileSync, statSync } from "node:fs"
import { join, resolve } from "node:path"
import { RaftStatusMethod } from "@kv/raft"
import { RpcNode, type RpcNodeShape, Transport } from "@kv/rpc"
import { freeUdpPorts, tempDir, writeFile } from "@kv/testkit"
import type { Subprocess } from "bun"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { connect } from "../src/index.ts"

const root = resolve(import.meta.dir, "../../..")
const dir = tempDir("kv-default-key")
const scope = Effect.runSync(Scope.make())
const config = join(dir.path, "cluster.toml")
const keyPath = join(dir.path, "data", "cluster.key")

let cluster: Subprocess<"ignore", "pipe", "pipe"> | undefined

afterAll(async () => {
  if (cluster !== undefined) {
    cluster.kill("SIGINT")
    const timer = setTimeout(() => cluster?.kill("SIGKILL"), 15_000)
    await cluster.exited
    clearTimeout(timer)
  }
  await Effect.runPromise(Scope.close(scope, Exit.void))
  dir.remove()
})

/**
 * The repository's cluster.toml on free ports and without metrics (whose fixed ports another test
 * may hold); its ./data is the temp directory's. Groups 101 and 102 are left out to spare the CPU:
 * the key is the same for every service.
 */
const writeConfig = async () => {
  let text = readFileSync(join(root, "cluster.toml"), "utf8")
  text = text.replace(/\[groups\.10[12]\]\nreplicas = \[[^\]]*\]\n/g, "").replace(/\[metrics\][\s\S]*$/, "")
  const addresses = [...new Set(text.match(/127\.0\.0\.1:\d+/g) ?? [])]
  const ports = await freeUdpPorts(addresses.length)
  addresses.forEach((address, k) => {
    text = text.replaceAll(`"${address}"`, `"127.0.0.1:${ports[k]}"`)
  })
  expect(text).not.toContain("[metrics]")
  writeFile(config, text)
  return text.match(/127\.0\.0\.1:\d+/g) ?? []
}

/** Starts `bun run cluster` on the temp config, without KV_CLUSTER_KEY, until it reports ready. */
const startCluster = async (): Promise<string> => {
  const env: Record<string, string | undefined> = { ...process.env }
  delete env.KV_CLUSTER_KEY
  const proc = Bun.spawn(["bun", "run", "cluster", "--config", config], {
    cwd: root,
    env,
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  })
  cluster = proc
  let output = ""
  const decoder = new TextDecoder()
  void (async () => {
    for await (const chunk of proc.stderr) output += decoder.decode(chunk)
  })()
  const reader = proc.stdout.getReader()
  const deadline = Date.now() + 60_000
  while (!output.includes("Ctrl-C stops the cluster")) {
    if (Date.now() > deadline) throw new Error(`cluster did not come up:\n${output}`)
    const { value, done } = await reader.read()
    if (done) throw new Error(`cluster exited:\n${output}`)
    output += decoder.decode(value)
  }
  reader.releaseLock()
  void (async () => {
    for await (const chunk of proc.stdout) output += decoder.decode(chunk)
  })()
  return output
}

const stopCluster = async (): Promise<number> => {
  const proc = cluster as Subprocess
  proc.kill("SIGINT")
  const code = await proc.exited
  cluster = undefined
  return code
}

const kv = async (...args: string[]) => {
  const env: Record<string, string | undefined> = { ...process.env }
  delete env.KV_CLUSTER_KEY
  const proc = Bun.spawn(["bun", "run", "kv", ...args, "--config", config], {
    cwd: root,
    env,
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

const udpNode = (key: string | undefined): Promise<RpcNodeShape> =>
  Effect.runPromise(
    Layer.buildWithScope(
      RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0", key }))),
      scope,
    ).pipe(Effect.map((context) => Context.get(context, RpcNode))),
  )

describe("the default cluster", () => {
  test("gets a key on its first start, keeps it, and answers only datagrams that carry it", async () => {
    const replicas = await writeConfig()
    const previous = process.env.KV_CLUSTER_KEY
    delete process.env.KV_CLUSTER_KEY
    try {
      const first = await startCluster()
      expect(first).toContain(`created the cluster key ${keyPath}`)
      expect(statSync(keyPath).mode & 0o777).toBe(0o600)
      const key = readFileSync(keyPath, "utf8").trim()
      expect(key.length).toBeGreaterThanOrEqual(32)

      // The CLI finds the key on its own.
      expect(await kv("put", "hello", "world")).toMatchObject({ code: 0 })
      expect(await kv("get", "hello")).toMatchObject({ stdout: "world", code: 0 })
      expect(await kv("put", "kv-only", "1", "--service", "kvraft")).toMatchObject({ code: 0 })

      // So does connect({ config }).
      const clerk = await connect({ config, deadlineMs: 20_000 })
      try {
        await clerk.append("hello", "!")
        expect(await clerk.get("hello")).toBe("world!")
      } finally {
        await clerk.close()
      }

      // Without the key nothing answers; with it every replica does.
      const anonymous = await udpNode(undefined)
      const keyed = await udpNode(key)
      const status = (node: RpcNodeShape, address: string) =>
        Effect.runPromise(
          Effect.exit(node.call(address, RaftStatusMethod, {}, { attemptTimeoutMs: 100, deadlineMs: 600 })),
        )
      for (const address of replicas) {
        expect(Exit.isSuccess(await status(keyed, address))).toBe(true)
        const refused = await status(anonymous, address)
        expect(Exit.isFailure(refused) && JSON.stringify(refused.cause)).toContain("Timeout")
      }
      expect(anonymous.transport.stats.datagramsReceived).toBe(0)

      // The next start uses the same key: data written before is readable with it.
      expect(await stopCluster()).toBe(0)
      const second = await startCluster()
      expect(second).toContain(`cluster key ${keyPath}`)
      expect(second).not.toContain("created the cluster key")
      expect(readFileSync(keyPath, "utf8").trim()).toBe(key)
      expect(await kv("get", "hello")).toMatchObject({ stdout: "world!", code: 0 })
      expect(await kv("get", "kv-only", "--service", "kvraft")).toMatchObject({ stdout: "1", code: 0 })
      expect(await stopCluster()).toBe(0)
    } finally {
      if (previous !== undefined) process.env.KV_CLUSTER_KEY = previous
    }
  }, 150_000)
})
