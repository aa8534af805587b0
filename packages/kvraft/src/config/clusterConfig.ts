import { readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import type { KeyGrant } from "@kv/rpc"
import { Result } from "effect"
import {
  type ClientKey,
  type ClusterKeySource,
  readFailure,
  resolveClientKey,
  resolveClientKeys,
  resolveClusterKey,
  resolvePreviousClusterKeys,
} from "./clusterKey.ts"
import { crossCheckProblems } from "./crossChecks.ts"
import { ConfigError } from "./errors.ts"
import {
  ClusterFile,
  DEFAULT_DATA_DIR,
  DEFAULT_MAX_RAFT_STATE_BYTES,
  DEFAULT_N_SHARDS,
  decodeClusterFile,
} from "./fileSchema.ts"
import { issueProblems } from "./issueProblems.ts"
import { parseToml } from "./tomlSyntax.ts"

/** The `host:port` UDP addresses of the replicas of one Raft group; replica k is `replicas[k]`. */
export interface ReplicaGroupConfig {
  readonly replicas: readonly string[]
  /** `replicas[preferredLeader]` leads whenever it is up and holds the log; undefined: any replica. */
  readonly preferredLeader?: number | undefined
}

/** A validated `cluster.toml`, with defaults applied and paths made absolute. */
export interface ClusterConfig {
  /** The file's absolute path, or "<inline>". */
  readonly source: string
  /** Absolute; each replica keeps its state in a subdirectory (see `dataDirOf`). */
  readonly dataDir: string
  readonly nShards: number
  /** A replica snapshots once its Raft state passes this many bytes; 0 = never. */
  readonly maxRaftStateBytes: number
  /**
   * From KV_CLUSTER_KEY (wins), the trimmed contents of clusterKeyFile, or the key `bun run cluster`
   * generated in `<dataDir>/cluster.key`, in that order; undefined = datagrams are neither encrypted
   * nor authenticated.
   */
  readonly clusterKey: string | undefined
  readonly clusterKeySource: ClusterKeySource | undefined
  /**
   * Cluster keys still accepted (never sent) while a new one is rolled out: KV_CLUSTER_KEY_PREVIOUS
   * (comma-separated, wins) or previousClusterKeyFiles.
   */
  readonly previousClusterKeys: readonly string[]
  /** Client credentials servers accept, each with its role ([[clientKeys]]); see `serverKeyGrants`. */
  readonly clientKeys: readonly ClientKey[]
  /**
   * This client's own key (KV_CLIENT_KEY): clients seal with it instead of the cluster key. When it
   * is set, server key files that cannot be read are no problem (a client host need not have them).
   */
  readonly clientKey: string | undefined
  readonly controller: ReplicaGroupConfig
  /** Shard groups by gid, in ascending gid order. */
  readonly groups: ReadonlyMap<number, ReplicaGroupConfig>
  /** The single-group KV service, if the file defines one. */
  readonly kvraft: ReplicaGroupConfig | undefined
  readonly metrics: { readonly basePort: number } | undefined
  /** [watch]: the history every store keeps for watchers (unset: the servers' defaults). */
  readonly watch: { readonly historyEvents?: number; readonly historyBytes?: number }
  /** [leases]: how often the kvraft leader checkpoints leases' time left (unset: the default). */
  readonly leases: { readonly checkpointMs?: number }
}

export interface ParseClusterConfigOptions {
  /** Names the configuration in errors; default "<inline>". */
  readonly source?: string
  /** Relative `dataDir` and `clusterKeyFile` resolve against this; default the working directory. */
  readonly baseDir?: string
  /** Where KV_CLUSTER_KEY is read; default `process.env`. */
  readonly env?: Record<string, string | undefined>
}

export interface LoadClusterConfigOptions {
  readonly env?: Record<string, string | undefined>
}

/** Every service that owns replicas; a replica's data directory is named after it. */
export type ServiceName = "controller" | "kvraft" | `group-${number}`

const TOP_LEVEL_KEYS = Object.keys(ClusterFile.fields)

/** Parses and validates cluster.toml text. Throws `ConfigError` listing every problem found. */
export const parseClusterConfig = (text: string, options: ParseClusterConfigOptions = {}): ClusterConfig => {
  const source = options.source ?? "<inline>"
  const baseDir = resolve(options.baseDir ?? process.cwd())
  const parsed = parseToml(text)
  if (!parsed.ok) throw new ConfigError({ source, problems: [parsed.problem] })

  const decoded = decodeClusterFile(parsed.value)
  const problems = Result.isFailure(decoded) ? issueProblems(decoded.failure.issue, TOP_LEVEL_KEYS) : []
  problems.push(...crossCheckProblems(parsed.value))
  // The generated key's directory; a dataDir that is not a string is reported by the schema.
  const dataDir = resolve(baseDir, typeof parsed.value.dataDir === "string" ? parsed.value.dataDir : DEFAULT_DATA_DIR)
  const env = options.env ?? process.env
  const client = resolveClientKey(env)
  if (!client.ok) problems.push(client.problem)
  // A client with a key of its own need not read the servers' keys, and usually cannot.
  const asClient = client.ok && client.clientKey !== undefined
  const key = resolveClusterKey(parsed.value.clusterKeyFile, baseDir, env, dataDir)
  const previous = resolvePreviousClusterKeys(parsed.value.previousClusterKeyFiles, baseDir, env)
  const clientKeys = resolveClientKeys(parsed.value.clientKeys, baseDir)
  if (!asClient) {
    if (!key.ok) problems.push(key.problem)
    if (!previous.ok) problems.push(...previous.problems)
    if (!clientKeys.ok) problems.push(...clientKeys.problems)
    const clusterKey = key.ok ? key.clusterKey : undefined
    const hasOthers = (previous.ok && previous.keys.length > 0) || (clientKeys.ok && clientKeys.keys.length > 0)
    if (key.ok && clusterKey === undefined && hasOthers) {
      problems.push(
        "previousClusterKeyFiles / clientKeys / KV_CLUSTER_KEY_PREVIOUS: need a cluster key (clusterKeyFile or KV_CLUSTER_KEY), the servers' own",
      )
    }
  }
  if (problems.length > 0 || Result.isFailure(decoded)) {
    throw new ConfigError({ source, problems })
  }
  return build(decoded.success, {
    source,
    baseDir,
    clusterKey: key.ok ? key.clusterKey : undefined,
    clusterKeySource: key.ok ? key.source : undefined,
    previousClusterKeys: previous.ok ? previous.keys : [],
    clientKeys: clientKeys.ok ? clientKeys.keys : [],
    clientKey: client.ok ? client.clientKey : undefined,
  })
}

/**
 * The keys a server accepts, its own first (the one it seals with): the cluster key, the previous
 * ones during a rotation (also the servers' role), then the client keys with their roles. Undefined:
 * no cluster key, datagrams are not authenticated.
 */
export const serverKeyGrants = (config: ClusterConfig): readonly KeyGrant[] | undefined => {
  if (config.clusterKey === undefined) return undefined
  return [
    { secret: config.clusterKey, role: "server" },
    ...config.previousClusterKeys.map((secret): KeyGrant => ({ secret, role: "server" })),
    ...config.clientKeys.map((c): KeyGrant => ({ secret: c.key, role: c.role })),
  ]
}

/** Reads, parses and validates a cluster.toml; relative paths in it resolve against its directory. */
export const loadClusterConfig = (path: string, options: LoadClusterConfigOptions = {}): ClusterConfig => {
  const source = resolve(path)
  let text: string
  try {
    text = readFileSync(source, "utf8")
  } catch (error) {
    throw new ConfigError({ source, problems: [`cluster config ${JSON.stringify(source)} ${readFailure(error)}`] })
  }
  return parseClusterConfig(text, {
    source,
    baseDir: dirname(source),
    ...(options.env === undefined ? {} : { env: options.env }),
  })
}

/**
 * `<dataDir>/<service>/replica-<k>`: one directory per replica, so several replicas of one
 * cluster can share a machine (and `dataDir`) without sharing state. Asking for a service or
 * replica the configuration does not have is a bug in the caller, so it throws.
 */
export const dataDirOf = (config: ClusterConfig, service: ServiceName, replica: number): string => {
  const group = replicaGroupOf(config, service)
  if (group === undefined) throw new RangeError(`dataDirOf: ${config.source} defines no ${service}`)
  if (!Number.isInteger(replica) || replica < 0 || replica >= group.replicas.length) {
    throw new RangeError(`dataDirOf: ${service} has replicas 0..${group.replicas.length - 1}, not ${replica}`)
  }
  return join(config.dataDir, service, `replica-${replica}`)
}

const replicaGroupOf = (config: ClusterConfig, service: ServiceName): ReplicaGroupConfig | undefined => {
  if (service === "controller") return config.controller.replicas.length > 0 ? config.controller : undefined
  if (service === "kvraft") return config.kvraft
  return config.groups.get(Number(service.slice("group-".length)))
}

const replicaGroup = (group: {
  readonly replicas: readonly string[]
  readonly preferredLeader?: number
}): ReplicaGroupConfig =>
  group.preferredLeader === undefined
    ? { replicas: [...group.replicas] }
    : { replicas: [...group.replicas], preferredLeader: group.preferredLeader }

const build = (
  file: ClusterFile,
  context: {
    source: string
    baseDir: string
    clusterKey: string | undefined
    clusterKeySource: ClusterKeySource | undefined
    previousClusterKeys: readonly string[]
    clientKeys: readonly ClientKey[]
    clientKey: string | undefined
  },
): ClusterConfig => {
  const groups = Object.entries(file.groups ?? {})
    .map(([gid, group]) => [Number(gid), replicaGroup(group)] as const)
    .sort(([a], [b]) => a - b)
  return {
    source: context.source,
    dataDir: resolve(context.baseDir, file.dataDir ?? DEFAULT_DATA_DIR),
    nShards: file.nShards ?? DEFAULT_N_SHARDS,
    maxRaftStateBytes: file.maxRaftStateBytes ?? DEFAULT_MAX_RAFT_STATE_BYTES,
    clusterKey: context.clusterKey,
    clusterKeySource: context.clusterKeySource,
    previousClusterKeys: context.previousClusterKeys,
    clientKeys: context.clientKeys,
    clientKey: context.clientKey,
    // A kvraft-only cluster has no controller; an empty list keeps the field total for callers.
    controller: file.controller === undefined ? { replicas: [] } : replicaGroup(file.controller),
    groups: new Map(groups),
    kvraft: file.kvraft === undefined ? undefined : replicaGroup(file.kvraft),
    metrics: file.metrics?.basePort === undefined ? undefined : { basePort: file.metrics.basePort },
    watch: { ...file.watch },
    leases: { ...file.leases },
  }
}

/** The state-machine limits `cluster.toml` sets (its [watch] table), for a server's `limits` option. */
export const configuredLimits = (config: ClusterConfig) => ({
  ...(config.watch.historyEvents === undefined ? {} : { watchHistoryEvents: config.watch.historyEvents }),
  ...(config.watch.historyBytes === undefined ? {} : { watchHistoryBytes: config.watch.historyBytes }),
})
