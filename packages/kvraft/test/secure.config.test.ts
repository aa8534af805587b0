/** Proves that cluster.toml and the environment name the keys of a rotation and of client roles. */
import { afterAll, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigError, parseClusterConfig, serverKeyGrants } from "../src/index.ts"

const scratch = mkdtempSync(join(tmpdir(), "kv-secure-config-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))
for (const [name, key] of [
  ["server.key", "server secret"],
  ["old.key", "old server secret"],
  ["reader.key", "reader secret"],
  ["admin.key", "admin secret"],
]) {
  writeFileSync(join(scratch, name as string), `${key}\n`)
}

const KVRAFT = 'kvraft = { replicas = ["127.0.0.1:7200"] }\n'
const WITH_KEYS = `${KVRAFT}clusterKeyFile = "server.key"
previousClusterKeyFiles = ["old.key"]

[[clientKeys]]
role = "read-only"
keyFile = "reader.key"

[[clientKeys]]
role = "admin"
keyFile = "admin.key"
`

const parse = (text: string, env: Record<string, string> = {}) => parseClusterConfig(text, { baseDir: scratch, env })
const problemsOf = (text: string, env: Record<string, string> = {}): readonly string[] => {
  try {
    parse(text, env)
    return []
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
}

describe("keys in the configuration", () => {
  test("a server accepts its own key first, the previous ones as servers, and each client key with its role", () => {
    const config = parse(WITH_KEYS)
    expect(config.previousClusterKeys).toEqual(["old server secret"])
    expect(config.clientKeys).toEqual([
      { role: "read-only", key: "reader secret" },
      { role: "admin", key: "admin secret" },
    ])
    expect(serverKeyGrants(config)).toEqual([
      { secret: "server secret", role: "server" },
      { secret: "old server secret", role: "server" },
      { secret: "reader secret", role: "read-only" },
      { secret: "admin secret", role: "admin" },
    ])
  })

  test("KV_CLUSTER_KEY_PREVIOUS lists old keys separated by commas and wins over the files", () => {
    const config = parse(WITH_KEYS, { KV_CLUSTER_KEY_PREVIOUS: "one, two" })
    expect(config.previousClusterKeys).toEqual(["one", "two"])
    expect(problemsOf(KVRAFT, { KV_CLUSTER_KEY: "k", KV_CLUSTER_KEY_PREVIOUS: "one,,two" })[0]).toContain(
      "KV_CLUSTER_KEY_PREVIOUS: has an empty key",
    )
  })

  test("a single cluster key is every role, as before roles existed", () => {
    const config = parse(KVRAFT, { KV_CLUSTER_KEY: "only key" })
    expect(serverKeyGrants(config)).toEqual([{ secret: "only key", role: "server" }])
    expect(serverKeyGrants(parse(KVRAFT))).toBeUndefined()
  })

  test("missing key files, unknown roles and client keys without a cluster key are reported", () => {
    const problems = problemsOf(`${KVRAFT}previousClusterKeyFiles = ["gone.key"]

[[clientKeys]]
role = "superuser"
keyFile = "reader.key"
`)
    expect(problems.some((p) => p.includes("clientKeys[0].role"))).toBe(true)
    expect(problems.some((p) => p.includes('previousClusterKeyFiles[0]: "') && p.includes("does not exist"))).toBe(true)
    expect(problemsOf(`${KVRAFT}[[clientKeys]]\nrole = "read-only"\nkeyFile = "reader.key"\n`)).toEqual([
      "previousClusterKeyFiles / clientKeys / KV_CLUSTER_KEY_PREVIOUS: need a cluster key (clusterKeyFile or KV_CLUSTER_KEY), the servers' own",
    ])
  })

  test("a client with KV_CLIENT_KEY loads a cluster.toml whose server key files it does not have", () => {
    const text = `clusterKeyFile = "not-on-this-host.key"\n${KVRAFT}`
    expect(problemsOf(text)[0]).toContain("does not exist")
    const config = parse(text, { KV_CLIENT_KEY: "reader secret" })
    expect(config.clientKey).toBe("reader secret")
    expect(config.clusterKey).toBeUndefined()
    expect(problemsOf(KVRAFT, { KV_CLIENT_KEY: " " })[0]).toContain("KV_CLIENT_KEY: is set but empty")
  })
})
