import { afterAll, describe, expect, test } from "bun:test"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import {
  type ClusterConfig,
  ConfigError,
  configuredLimits,
  dataDirOf,
  loadClusterConfig,
  parseClusterConfig,
} from "../src/config/index.ts"

// Proves that cluster.toml loads into a ClusterConfig with defaults, absolute paths and the right key.

const ROOT_CLUSTER_TOML = resolve(import.meta.dir, "../../../cluster.toml")
const scratch = mkdtempSync(join(tmpdir(), "kv-config-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

const KVRAFT_ONLY = 'kvraft = { replicas = ["127.0.0.1:7200"] }\n'
const noEnv = {}

/** Runs `f`, expecting a ConfigError, and returns it. */
const configErrorOf = (f: () => unknown): ConfigError => {
  try {
    f()
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
  throw new Error("expected a ConfigError, but the configuration was accepted")
}

describe("the root cluster.toml", () => {
  test("describes the default local cluster", () => {
    const config = loadClusterConfig(ROOT_CLUSTER_TOML, { env: noEnv })
    expect(config.source).toBe(ROOT_CLUSTER_TOML)
    expect(config.nShards).toBe(10)
    expect(config.maxRaftStateBytes).toBe(16_777_216)
    expect(config.dataDir).toBe(resolve(ROOT_CLUSTER_TOML, "../data"))
    // No key is configured; only the one `bun run cluster` generates in ./data can be in force.
    expect(config.clusterKeySource === undefined || config.clusterKeySource === "dataDir").toBe(true)
    expect(config.controller.replicas).toEqual(["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"])
    expect([...config.groups.keys()]).toEqual([100, 101, 102])
    for (const group of config.groups.values()) expect(group.replicas).toHaveLength(3)
    expect(config.groups.get(101)?.replicas).toEqual(["127.0.0.1:7110", "127.0.0.1:7111", "127.0.0.1:7112"])
    expect(config.kvraft?.replicas).toEqual(["127.0.0.1:7200", "127.0.0.1:7201", "127.0.0.1:7202"])
    expect(config.metrics).toEqual({ basePort: 9100 })
  })
})

describe("values and defaults", () => {
  test("omitted dataDir, nShards and maxRaftStateBytes take their documented defaults", () => {
    const config = parseClusterConfig(KVRAFT_ONLY, { baseDir: scratch, env: noEnv })
    expect(config.source).toBe("<inline>")
    expect(config.dataDir).toBe(join(scratch, "data"))
    expect(config.nShards).toBe(10)
    expect(config.maxRaftStateBytes).toBe(16_777_216)
    expect(config.metrics).toBeUndefined()
    expect(config.groups.size).toBe(0)
    // A kvraft-only cluster has no controller replicas.
    expect(config.controller.replicas).toEqual([])
  })

  test("groups come out sorted by gid, numerically, whatever the file order", () => {
    const config = parseClusterConfig(
      `
[controller]
replicas = ["127.0.0.1:7000"]
[groups.20]
replicas = ["127.0.0.1:7020"]
[groups.3]
replicas = ["127.0.0.1:7003"]
[groups.100]
replicas = ["127.0.0.1:7100"]
`,
      { env: noEnv },
    )
    expect([...config.groups.keys()]).toEqual([3, 20, 100])
    expect(config.kvraft).toBeUndefined()
  })

  test("metrics.basePort, maxRaftStateBytes = 0 and nShards bounds are accepted", () => {
    const config = parseClusterConfig(
      `nShards = 1024\nmaxRaftStateBytes = 0\n${KVRAFT_ONLY}[metrics]\nbasePort = 9000\n`,
      {
        env: noEnv,
      },
    )
    expect(config.metrics).toEqual({ basePort: 9000 })
    expect(config.maxRaftStateBytes).toBe(0)
    expect(config.nShards).toBe(1024)
  })

  test("[watch] and [leases] reach the servers' options; unset they leave the defaults", () => {
    const config = parseClusterConfig(
      `${KVRAFT_ONLY}[watch]\nhistoryEvents = 500\nhistoryBytes = 65536\n[leases]\ncheckpointMs = 2000\n`,
      { env: noEnv },
    )
    expect(configuredLimits(config)).toEqual({ watchHistoryEvents: 500, watchHistoryBytes: 65_536 })
    expect(config.leases).toEqual({ checkpointMs: 2_000 })
    const plain = parseClusterConfig(KVRAFT_ONLY, { env: noEnv })
    expect(configuredLimits(plain)).toEqual({})
    expect(plain.leases).toEqual({})
    const bad = configErrorOf(() =>
      parseClusterConfig(`${KVRAFT_ONLY}[watch]\nhistoryEvents = 0\n[leases]\ncheckpointMs = 5\n`, { env: noEnv }),
    )
    expect(bad.message).toContain("watch.historyEvents")
    expect(bad.message).toContain("leases.checkpointMs")
  })

  test("hostnames and bracketed IPv6 addresses are valid replica addresses", () => {
    const config = parseClusterConfig(
      '[kvraft]\nreplicas = ["localhost:1", "kv-2.example.com:65535", "[::1]:7000"]\n',
      {
        env: noEnv,
      },
    )
    expect(config.kvraft?.replicas).toEqual(["localhost:1", "kv-2.example.com:65535", "[::1]:7000"])
  })
})

describe("paths resolve against the file", () => {
  test("a relative dataDir resolves against the directory of the file, not the working directory", () => {
    const dir = join(scratch, "relative")
    mkdirSync(dir, { recursive: true })
    const path = join(dir, "cluster.toml")
    writeFileSync(path, `dataDir = "../state/here"\n${KVRAFT_ONLY}`)
    const config = loadClusterConfig(path, { env: noEnv })
    expect(config.dataDir).toBe(join(scratch, "state", "here"))
  })

  test("an absolute dataDir is kept", () => {
    const config = parseClusterConfig(`dataDir = "/var/lib/kv"\n${KVRAFT_ONLY}`, { baseDir: scratch, env: noEnv })
    expect(config.dataDir).toBe("/var/lib/kv")
  })

  test("parseClusterConfig resolves against baseDir", () => {
    const config = parseClusterConfig(`dataDir = "d"\n${KVRAFT_ONLY}`, { baseDir: "/srv/kv", env: noEnv })
    expect(config.dataDir).toBe("/srv/kv/d")
  })
})

describe("the cluster key", () => {
  const dir = join(scratch, "key")
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, "cluster.key"), "  from-the-file\n")
  writeFileSync(join(dir, "blank.key"), " \n\n")
  const withKeyFile = (name: string) => `clusterKeyFile = "./${name}"\n${KVRAFT_ONLY}`

  test("no clusterKeyFile and no KV_CLUSTER_KEY means no key", () => {
    expect(parseClusterConfig(KVRAFT_ONLY, { env: noEnv }).clusterKey).toBeUndefined()
  })

  test("clusterKeyFile is read relative to the file and trimmed", () => {
    const config = parseClusterConfig(withKeyFile("cluster.key"), { baseDir: dir, env: noEnv })
    expect(config.clusterKey).toBe("from-the-file")
  })

  test("KV_CLUSTER_KEY beats clusterKeyFile", () => {
    const config = parseClusterConfig(withKeyFile("cluster.key"), { baseDir: dir, env: { KV_CLUSTER_KEY: "from-env" } })
    expect(config.clusterKey).toBe("from-env")
  })

  test("KV_CLUSTER_KEY alone turns on auth", () => {
    expect(parseClusterConfig(KVRAFT_ONLY, { env: { KV_CLUSTER_KEY: "k" } }).clusterKey).toBe("k")
  })

  test("with KV_CLUSTER_KEY set, a missing clusterKeyFile is not read and not an error", () => {
    const config = parseClusterConfig(withKeyFile("absent.key"), { baseDir: dir, env: { KV_CLUSTER_KEY: "k" } })
    expect(config.clusterKey).toBe("k")
  })

  test("a missing clusterKeyFile is an error naming the resolved path", () => {
    const error = configErrorOf(() => parseClusterConfig(withKeyFile("absent.key"), { baseDir: dir, env: noEnv }))
    expect(error.problems).toEqual([`clusterKeyFile: ${JSON.stringify(join(dir, "absent.key"))} does not exist`])
  })

  test("a clusterKeyFile holding only whitespace is an error", () => {
    const error = configErrorOf(() => parseClusterConfig(withKeyFile("blank.key"), { baseDir: dir, env: noEnv }))
    expect(error.problems).toEqual([
      `clusterKeyFile: ${JSON.stringify(join(dir, "blank.key"))} is empty (it must hold the cluster key)`,
    ])
  })

  test("a clusterKeyFile that is a directory is an error", () => {
    const error = configErrorOf(() => parseClusterConfig(withKeyFile("."), { baseDir: dir, env: noEnv }))
    expect(error.problems[0]).toContain("is a directory")
  })

  test("an empty KV_CLUSTER_KEY is an error, not silently no auth", () => {
    const error = configErrorOf(() => parseClusterConfig(KVRAFT_ONLY, { env: { KV_CLUSTER_KEY: " " } }))
    expect(error.problems).toEqual(["KV_CLUSTER_KEY: is set but empty (unset it, or set it to the cluster key)"])
  })
})

describe("loadClusterConfig errors", () => {
  test("a missing file is a ConfigError naming the absolute path", () => {
    const path = join(scratch, "nope", "cluster.toml")
    const error = configErrorOf(() => loadClusterConfig(path))
    expect(error._tag).toBe("ConfigError")
    expect(error.source).toBe(path)
    expect(error.problems).toEqual([`cluster config ${JSON.stringify(path)} does not exist`])
    expect(error.message).toContain(path)
  })

  test("a directory is a ConfigError", () => {
    const error = configErrorOf(() => loadClusterConfig(scratch))
    expect(error.problems[0]).toContain("is a directory")
  })

  test("problems in a loaded file name the file as the source", () => {
    const path = join(scratch, "bad.toml")
    writeFileSync(path, `nShards = 0\n${KVRAFT_ONLY}`)
    const error = configErrorOf(() => loadClusterConfig(path, { env: noEnv }))
    expect(error.source).toBe(path)
    expect(error.message).toBe(
      `invalid cluster config ${path} (1 problem):\n  nShards: 0 is out of range (must be an integer 1–1024)`,
    )
  })
})

describe("dataDirOf", () => {
  const config: ClusterConfig = parseClusterConfig(
    `
dataDir = "/var/lib/kv"
[controller]
replicas = ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]
[groups.100]
replicas = ["127.0.0.1:7100", "127.0.0.1:7101"]
[kvraft]
replicas = ["127.0.0.1:7200"]
`,
    { env: noEnv },
  )

  test("each replica of each service gets its own directory under dataDir", () => {
    expect(dataDirOf(config, "group-100", 1)).toBe("/var/lib/kv/group-100/replica-1")
    expect(dataDirOf(config, "controller", 2)).toBe("/var/lib/kv/controller/replica-2")
    expect(dataDirOf(config, "kvraft", 0)).toBe("/var/lib/kv/kvraft/replica-0")
  })

  test("a service or replica the config does not define is a bug in the caller", () => {
    expect(() => dataDirOf(config, "group-101", 0)).toThrow(RangeError)
    expect(() => dataDirOf(config, "group-100", 2)).toThrow("group-100 has replicas 0..1, not 2")
    expect(() => dataDirOf(config, "kvraft", -1)).toThrow(RangeError)
    expect(() => dataDirOf(config, "controller", 0.5)).toThrow(RangeError)
    const kvraftOnly = parseClusterConfig(KVRAFT_ONLY, { env: noEnv })
    expect(() => dataDirOf(kvraftOnly, "controller", 0)).toThrow(RangeError)
  })
})
