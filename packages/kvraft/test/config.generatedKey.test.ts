// Proves that the key `bun run cluster` generates in the data directory is created once, private to
// its owner, found by every loader of the configuration, and yields to an explicit key.
import { afterAll, describe, expect, test } from "bun:test"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigError, ensureGeneratedClusterKey, GENERATED_KEY_FILE, parseClusterConfig } from "../src/config/index.ts"

const scratch = mkdtempSync(join(tmpdir(), "kv-generated-key-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))
let dirs = 0
const freshBase = () => {
  const dir = join(scratch, `base-${dirs++}`)
  mkdirSync(dir)
  return dir
}

const KVRAFT_ONLY = 'kvraft = { replicas = ["127.0.0.1:7200"] }\n'
const noEnv = {}

describe("the generated cluster key", () => {
  test("is created once in the data directory, mode 0600, and kept on every later start", () => {
    const dataDir = join(freshBase(), "data")
    const first = ensureGeneratedClusterKey(dataDir)
    expect(first).toEqual({ path: join(dataDir, GENERATED_KEY_FILE), created: true })
    expect(statSync(first.path).mode & 0o777).toBe(0o600)
    const key = readFileSync(first.path, "utf8").trim()
    expect(key).toMatch(/^[0-9a-f]{64}$/)
    expect(ensureGeneratedClusterKey(dataDir)).toEqual({ path: first.path, created: false })
    expect(readFileSync(first.path, "utf8").trim()).toBe(key)
    // Another cluster gets another key.
    const other = ensureGeneratedClusterKey(join(freshBase(), "data"))
    expect(readFileSync(other.path, "utf8").trim()).not.toBe(key)
  })

  test("is used by the configuration when nothing else names a key", () => {
    const base = freshBase()
    expect(parseClusterConfig(KVRAFT_ONLY, { baseDir: base, env: noEnv }).clusterKey).toBeUndefined()
    const { path } = ensureGeneratedClusterKey(join(base, "data"))
    const config = parseClusterConfig(KVRAFT_ONLY, { baseDir: base, env: noEnv })
    expect(config.clusterKey).toBe(readFileSync(path, "utf8").trim())
    expect(config.clusterKeySource).toBe("dataDir")
  })

  test("follows a configured dataDir", () => {
    const base = freshBase()
    const { path } = ensureGeneratedClusterKey(join(base, "elsewhere"))
    const config = parseClusterConfig(`dataDir = "./elsewhere"\n${KVRAFT_ONLY}`, { baseDir: base, env: noEnv })
    expect(config.clusterKey).toBe(readFileSync(path, "utf8").trim())
  })

  test("yields to clusterKeyFile and to KV_CLUSTER_KEY", () => {
    const base = freshBase()
    ensureGeneratedClusterKey(join(base, "data"))
    writeFileSync(join(base, "explicit.key"), "explicit\n")
    const fromFile = parseClusterConfig(`clusterKeyFile = "./explicit.key"\n${KVRAFT_ONLY}`, {
      baseDir: base,
      env: noEnv,
    })
    expect([fromFile.clusterKey, fromFile.clusterKeySource]).toEqual(["explicit", "clusterKeyFile"])
    const fromEnv = parseClusterConfig(KVRAFT_ONLY, { baseDir: base, env: { KV_CLUSTER_KEY: "from-env" } })
    expect([fromEnv.clusterKey, fromEnv.clusterKeySource]).toEqual(["from-env", "KV_CLUSTER_KEY"])
  })

  test("an empty generated key file is an error that says how to recover", () => {
    const base = freshBase()
    mkdirSync(join(base, "data"))
    writeFileSync(join(base, "data", GENERATED_KEY_FILE), "\n")
    let error: unknown
    try {
      parseClusterConfig(KVRAFT_ONLY, { baseDir: base, env: noEnv })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).problems[0]).toContain(`${GENERATED_KEY_FILE}", is empty (delete it`)
  })
})
