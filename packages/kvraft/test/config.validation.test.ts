import { describe, expect, test } from "bun:test"
import { ConfigError, parseClusterConfig } from "../src/config/index.ts"

// Proves that every mistake in cluster.toml is reported, each with its field path, what is wrong
// and what would be right, and that several mistakes are all reported at once.

const KVRAFT_ONLY = '[kvraft]\nreplicas = ["127.0.0.1:7200"]\n'

/** The problems reported for `text`; empty when the configuration is accepted. */
const problemsOf = (text: string): readonly string[] => {
  try {
    parseClusterConfig(text, { env: {}, baseDir: "/nonexistent-kv-config-base" })
    return []
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
}

describe("TOML syntax", () => {
  test("a syntax error reports the parser's message and the line", () => {
    expect(problemsOf(`nShards = 10\n\n[controller\nreplicas = []\n`)).toEqual([
      "TOML syntax error on line 3: Expected ']' to close a table header but found (0x0A)",
    ])
  })

  test("a key defined twice reports the second definition's line", () => {
    expect(problemsOf(`nShards = 10\ndataDir = "d"\nnShards = 11\n${KVRAFT_ONLY}`)).toEqual([
      "TOML syntax error on line 3: Cannot redefine key 'nShards'",
    ])
  })

  test("an error inside a multi-line array points at the line that opens it", () => {
    const problems = problemsOf(`nShards = 10\n[kvraft]\nreplicas = [\n  "127.0.0.1:7200",\n  "127.0.0.1:7201" x\n]\n`)
    expect(problems).toHaveLength(1)
    expect(problems[0]).toStartWith("TOML syntax error on line 3: ")
  })

  test("a valid multi-line array earlier in the file does not mislead the line search", () => {
    const problems = problemsOf(`[kvraft]\nreplicas = [\n  "127.0.0.1:7200",\n]\n[metrics]\nbasePort = \n`)
    expect(problems).toEqual(["TOML syntax error on line 6: Missing value after '='; values must be on the same line"])
  })
})

describe("unknown keys", () => {
  test("an unknown top-level key is named, with the nearest known key", () => {
    expect(problemsOf(`nshards = 10\n${KVRAFT_ONLY}`)).toEqual([
      'nshards: unknown key (did you mean "nShards"? allowed here: dataDir, nShards, maxRaftStateBytes, clusterKeyFile, previousClusterKeyFiles, clientKeys, controller, groups, kvraft, metrics, watch, leases)',
    ])
  })

  test("a typo inside a section is named with its section", () => {
    expect(problemsOf(`${KVRAFT_ONLY}[controller]\nreplica = ["127.0.0.1:7000"]\n`)).toEqual([
      'controller.replica: unknown key (did you mean "replicas"? allowed here: replicas, preferredLeader)',
      'controller.replicas: is missing (every replica group needs replicas = ["host:port", ...])',
    ])
  })

  test("an unknown key in a group and in [metrics] is named", () => {
    const problems = problemsOf(
      `[controller]\nreplicas = ["127.0.0.1:7000"]\n[groups.100]\nreplicas = ["127.0.0.1:7100"]\nweight = 2\n[metrics]\nport = 9000\n`,
    )
    expect(problems).toEqual([
      "groups.100.weight: unknown key (allowed here: replicas, preferredLeader)",
      'metrics.port: unknown key (did you mean "basePort"? allowed here: basePort)',
    ])
  })

  test("a top-level key written after a section header is explained", () => {
    expect(problemsOf(`${KVRAFT_ONLY}nShards = 10\n`)).toEqual([
      "kvraft.nShards: unknown key (nShards is a top-level key: move it above the first [section] header)",
    ])
  })

  test("an unknown section is named", () => {
    expect(problemsOf(`${KVRAFT_ONLY}[group.100]\nreplicas = ["127.0.0.1:7100"]\n`)[0]).toStartWith(
      'group: unknown key (did you mean "groups"?',
    )
  })
})

describe("scalar fields", () => {
  test("nShards must be an integer 1..1024", () => {
    expect(problemsOf(`nShards = 0\n${KVRAFT_ONLY}`)).toEqual([
      "nShards: 0 is out of range (must be an integer 1–1024)",
    ])
    expect(problemsOf(`nShards = 1025\n${KVRAFT_ONLY}`)).toEqual([
      "nShards: 1025 is out of range (must be an integer 1–1024)",
    ])
    expect(problemsOf(`nShards = 2.5\n${KVRAFT_ONLY}`)).toEqual([
      "nShards: 2.5 is not an integer (must be an integer 1–1024)",
    ])
    expect(problemsOf(`nShards = "10"\n${KVRAFT_ONLY}`)).toEqual(['nShards: expected an integer 1–1024, got "10"'])
  })

  test("maxRaftStateBytes must be an integer >= 0", () => {
    expect(problemsOf(`maxRaftStateBytes = -1\n${KVRAFT_ONLY}`)).toEqual([
      "maxRaftStateBytes: -1 is out of range (must be an integer ≥ 0; 0 means never snapshot)",
    ])
    expect(problemsOf(`maxRaftStateBytes = 1e3\n${KVRAFT_ONLY}`)).toEqual([])
    expect(problemsOf(`maxRaftStateBytes = 0.5\n${KVRAFT_ONLY}`)).toEqual([
      "maxRaftStateBytes: 0.5 is not an integer (must be an integer ≥ 0; 0 means never snapshot)",
    ])
  })

  test("dataDir must be a non-empty string", () => {
    expect(problemsOf(`dataDir = ""\n${KVRAFT_ONLY}`)).toEqual([
      "dataDir: is empty (must be a non-empty directory path)",
    ])
    expect(problemsOf(`dataDir = 7\n${KVRAFT_ONLY}`)).toEqual(["dataDir: expected a non-empty directory path, got 7"])
  })

  test("clusterKeyFile must be a non-empty string", () => {
    expect(problemsOf(`clusterKeyFile = ""\n${KVRAFT_ONLY}`)).toEqual([
      "clusterKeyFile: is empty (must be a non-empty file path)",
    ])
  })

  test("metrics.basePort must be an integer 1..65535", () => {
    expect(problemsOf(`${KVRAFT_ONLY}[metrics]\nbasePort = 0\n`)).toEqual([
      "metrics.basePort: 0 is out of range (must be an integer 1–65535)",
    ])
    expect(problemsOf(`${KVRAFT_ONLY}[metrics]\nbasePort = 65536\n`)).toEqual([
      "metrics.basePort: 65536 is out of range (must be an integer 1–65535)",
    ])
  })
})

describe("replica addresses", () => {
  const groupsFile = (lists: string[]) =>
    `[controller]\nreplicas = ["127.0.0.1:7000"]\n${lists.map((list, i) => `[groups.${100 + i}]\nreplicas = ${list}\n`).join("")}`

  test("a port outside 1..65535 is named by its path", () => {
    const file = groupsFile([
      '["127.0.0.1:7100"]',
      '["127.0.0.1:7110", "127.0.0.1:7111", "127.0.0.1:99999"]',
      '["127.0.0.1:0"]',
    ])
    expect(problemsOf(file)).toEqual([
      'groups.101.replicas[2]: "127.0.0.1:99999" is not a valid host:port (port must be 1–65535)',
      'groups.102.replicas[0]: "127.0.0.1:0" is not a valid host:port (port must be 1–65535)',
    ])
  })

  test("malformed addresses each say what is wrong", () => {
    const problems = problemsOf(
      '[kvraft]\nreplicas = ["127.0.0.1", "127.0.0.1:http", ":7000", "::1:7000", "[::1:7000", "bad host:7000", 7000]\n',
    )
    expect(problems).toEqual([
      'kvraft.replicas[0]: "127.0.0.1" is not a valid host:port (missing ":port")',
      'kvraft.replicas[1]: "127.0.0.1:http" is not a valid host:port (port must be 1–65535)',
      'kvraft.replicas[2]: ":7000" is not a valid host:port (host is empty)',
      'kvraft.replicas[3]: "::1:7000" is not a valid host:port (an IPv6 host must be in brackets, e.g. [::1]:7000)',
      'kvraft.replicas[4]: "[::1:7000" is not a valid host:port (malformed [IPv6] host)',
      'kvraft.replicas[5]: "bad host:7000" is not a valid host:port (host must be a hostname, an IPv4 address or a bracketed IPv6 address)',
      'kvraft.replicas[6]: expected a "host:port" string, got 7000',
    ])
  })

  test("a replica list must be a non-empty list of at most 7", () => {
    const eight = JSON.stringify(Array.from({ length: 8 }, (_, i) => `127.0.0.1:${7300 + i}`))
    expect(problemsOf(groupsFile(["[]", eight, '"127.0.0.1:7120"']))).toEqual([
      'groups.100.replicas: is empty (list 1 to 7 "host:port" addresses)',
      "groups.101.replicas: lists 8 replicas; a group has at most 7",
      'groups.102.replicas: expected a list of "host:port" strings, got "127.0.0.1:7120"',
    ])
    const seven = JSON.stringify(Array.from({ length: 7 }, (_, i) => `127.0.0.1:${7300 + i}`))
    expect(problemsOf(groupsFile([seven]))).toEqual([])
  })

  test("an address used twice anywhere in the file names both places", () => {
    const file = `[controller]\nreplicas = ["127.0.0.1:7000", "127.0.0.1:7001"]\n[groups.100]\nreplicas = ["127.0.0.1:7100", "127.0.0.1:7001"]\n[groups.101]\nreplicas = ["127.0.0.1:7110", "127.0.0.1:7110"]\n[kvraft]\nreplicas = ["LOCALHOST:7200", "localhost:7200"]\n`
    expect(problemsOf(file)).toEqual([
      'groups.100.replicas[1]: "127.0.0.1:7001" is already used by controller.replicas[1] (every replica needs its own address; only replicas of different groups at the same position may share one)',
      'groups.101.replicas[1]: "127.0.0.1:7110" is already used by groups.101.replicas[0] (every replica needs its own address; only replicas of different groups at the same position may share one)',
      'kvraft.replicas[1]: "localhost:7200" is already used by kvraft.replicas[0] (every replica needs its own address; only replicas of different groups at the same position may share one)',
    ])
  })

  test("replicas of different groups at the same position may share an address (one process serves both)", () => {
    const file = `[controller]\nreplicas = ["127.0.0.1:7000"]\n[groups.100]\nreplicas = ["127.0.0.1:7100", "127.0.0.1:7101"]\n[groups.101]\nreplicas = ["127.0.0.1:7100", "127.0.0.1:7101"]\n[groups.102]\nreplicas = ["127.0.0.1:7101", "127.0.0.1:7000"]\n`
    expect(problemsOf(file)).toEqual([
      'groups.102.replicas[0]: "127.0.0.1:7101" is already used by groups.100.replicas[1] (every replica needs its own address; only replicas of different groups at the same position may share one)',
      'groups.102.replicas[1]: "127.0.0.1:7000" is already used by controller.replicas[0] (every replica needs its own address; only replicas of different groups at the same position may share one)',
    ])
  })
})

describe("groups and services", () => {
  const controller = '[controller]\nreplicas = ["127.0.0.1:7000"]\n'

  test("a group id that is not a positive integer is an error", () => {
    expect(problemsOf(`${controller}[groups.abc]\nreplicas = ["127.0.0.1:7100"]\n`)).toEqual([
      'groups.abc: "abc" is not a valid group id (group ids are positive integers, e.g. [groups.100])',
    ])
    expect(problemsOf(`${controller}[groups.0]\nreplicas = ["127.0.0.1:7100"]\n`)).toEqual([
      'groups.0: "0" is not a valid group id (group ids are positive integers, e.g. [groups.100])',
    ])
    expect(problemsOf(`${controller}[groups.-5]\nreplicas = ["127.0.0.1:7100"]\n`)).toEqual([
      'groups.-5: "-5" is not a valid group id (group ids are positive integers, e.g. [groups.100])',
    ])
  })

  test("a group must have replicas", () => {
    expect(problemsOf(`${controller}[groups.100]\n`)).toEqual([
      'groups.100.replicas: is missing (every replica group needs replicas = ["host:port", ...])',
    ])
  })

  test("a group or service that is not a table is an error", () => {
    expect(problemsOf(`${controller}[groups]\n100 = "127.0.0.1:7100"\n`)).toEqual([
      'groups.100: expected a table, got "127.0.0.1:7100"',
    ])
    expect(problemsOf(`kvraft = ["127.0.0.1:7200"]\n`)).toEqual(['kvraft: expected a table, got ["127.0.0.1:7200"]'])
  })

  test("groups without a controller is an error", () => {
    expect(problemsOf('[groups.100]\nreplicas = ["127.0.0.1:7100"]\n')).toEqual([
      "controller: is missing; [groups.*] need a [controller] section listing the controller replicas",
    ])
  })

  test("a file with neither controller nor kvraft is an error", () => {
    const neither = [
      "no service is defined: add [kvraft] for the single-group KV service, or [controller] and [groups.<gid>] for the sharded one",
    ]
    expect(problemsOf("nShards = 10\n")).toEqual(neither)
    expect(problemsOf("")).toEqual(neither)
    expect(problemsOf("[groups]\n")).toEqual(neither)
  })

  test("a controller without groups, and kvraft alone, are both valid", () => {
    expect(problemsOf(controller)).toEqual([])
    expect(problemsOf(KVRAFT_ONLY)).toEqual([])
  })
})

describe("several problems", () => {
  test("every problem in the file is reported, not just the first", () => {
    const file = `
dataDir = ""
nShards = 0
maxRaftStateBytes = -5
clusterKeyFile = "./missing.key"
replicaCount = 3

[groups.100]
replica = ["127.0.0.1:7100"]
[groups.101]
replicas = ["127.0.0.1:7110", "127.0.0.1:99999", "127.0.0.1:7110"]
[groups.x]
replicas = ["127.0.0.1:7120"]

[metrics]
basePort = 70000
`
    const problems = problemsOf(file)
    expect(problems).toEqual([
      "replicaCount: unknown key (allowed here: dataDir, nShards, maxRaftStateBytes, clusterKeyFile, previousClusterKeyFiles, clientKeys, controller, groups, kvraft, metrics, watch, leases)",
      "dataDir: is empty (must be a non-empty directory path)",
      "nShards: 0 is out of range (must be an integer 1–1024)",
      "maxRaftStateBytes: -5 is out of range (must be an integer ≥ 0; 0 means never snapshot)",
      'groups.x: "x" is not a valid group id (group ids are positive integers, e.g. [groups.100])',
      'groups.100.replica: unknown key (did you mean "replicas"? allowed here: replicas, preferredLeader)',
      'groups.100.replicas: is missing (every replica group needs replicas = ["host:port", ...])',
      'groups.101.replicas[1]: "127.0.0.1:99999" is not a valid host:port (port must be 1–65535)',
      "metrics.basePort: 70000 is out of range (must be an integer 1–65535)",
      "controller: is missing; [groups.*] need a [controller] section listing the controller replicas",
      'groups.101.replicas[2]: "127.0.0.1:7110" is already used by groups.101.replicas[0] (every replica needs its own address; only replicas of different groups at the same position may share one)',
      'clusterKeyFile: "/nonexistent-kv-config-base/missing.key" does not exist',
    ])
  })

  test("the error message lists every problem, one per line", () => {
    try {
      parseClusterConfig(`nShards = 0\nmaxRaftStateBytes = -1\n${KVRAFT_ONLY}`, { env: {} })
      throw new Error("expected a ConfigError")
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as ConfigError).message).toBe(
        [
          "invalid cluster config <inline> (2 problems):",
          "  nShards: 0 is out of range (must be an integer 1–1024)",
          "  maxRaftStateBytes: -1 is out of range (must be an integer ≥ 0; 0 means never snapshot)",
        ].join("\n"),
      )
    }
  })
})

describe("preferredLeader", () => {
  const threeGroups =
    '[controller]\nreplicas = ["127.0.0.1:7000"]\n' +
    '[groups.100]\nreplicas = ["127.0.0.1:7100", "127.0.0.1:7101", "127.0.0.1:7102"]\npreferredLeader = 2\n' +
    '[groups.101]\nreplicas = ["127.0.0.1:7110", "127.0.0.1:7111", "127.0.0.1:7112"]\n'

  test("names the replica by its index, per group; unset leaves any replica to lead", () => {
    const config = parseClusterConfig(threeGroups, { env: {} })
    expect(config.groups.get(100)?.preferredLeader).toBe(2)
    expect(config.groups.get(101)?.preferredLeader).toBeUndefined()
    expect(config.controller.preferredLeader).toBeUndefined()
    const kvraft = parseClusterConfig(`${KVRAFT_ONLY}preferredLeader = 0\n`, { env: {} })
    expect(kvraft.kvraft?.preferredLeader).toBe(0)
  })

  test("an index past the group's replicas, a negative one or a string is reported", () => {
    expect(problemsOf(threeGroups.replace("preferredLeader = 2", "preferredLeader = 3"))).toEqual([
      "groups.100.preferredLeader: 3 names no replica (replicas lists 3: 0–2)",
    ])
    expect(problemsOf(`${KVRAFT_ONLY}preferredLeader = -1\n`)).toEqual([
      "kvraft.preferredLeader: -1 is out of range (must be an integer 0–6, an index into replicas)",
    ])
    expect(problemsOf(`${KVRAFT_ONLY}preferredLeader = "0"\n`)).toEqual([
      'kvraft.preferredLeader: expected an integer 0–6, an index into replicas, got "0"',
    ])
  })
})
