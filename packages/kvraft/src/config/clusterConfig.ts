import { readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { Result } from "effect"
import { type ClusterKeySource, readFailure, resolveClusterKey } from "./clusterKey.ts"
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
   * generated in `<dataDir>/cluster.key`, in that order; undefined = no HMAC.
   */
  readonly clusterKey: string | undefined
  readonly clusterKeySource: ClusterKeySource | undefined
  readonly controller: ReplicaGroupConfig
  /** Shard groups by gid, in ascending gid order. */
  readonly groups: ReadonlyMap<number, ReplicaGroupConfig>
  /** The single-group KV service, if the file defines one. */
  readonly kvraft: ReplicaGroupConfig | undefined
  readonly metrics: { readonly basePort: number } | undefined
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
  const key = resolveClusterKey(parsed.value.clusterKeyFile, baseDir, options.env ?? process.env, dataDir)
  if (!key.ok) problems.push(key.problem)
  if (problems.length > 0 || Result.isFailure(decoded) || !key.ok) {
    throw new ConfigError({ source, problems })
  }
  return build(decoded.success, { source, baseDir, clusterKey: key.clusterKey, clusterKeySource: key.source })
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

const build = (
  file: ClusterFile,
  context: {
    source: string
    baseDir: string
    clusterKey: string | undefined
    clusterKeySource: ClusterKeySource | undefined
  },
): ClusterConfig => {
  const groups = Object.entries(file.groups ?? {})
    .map(([gid, group]) => [Number(gid), { replicas: [...group.replicas] }] as const)
    .sort(([a], [b]) => a - b)
  return {
    source: context.source,
    dataDir: resolve(context.baseDir, file.dataDir ?? DEFAULT_DATA_DIR),
    nShards: file.nShards ?? DEFAULT_N_SHARDS,
    maxRaftStateBytes: file.maxRaftStateBytes ?? DEFAULT_MAX_RAFT_STATE_BYTES,
    clusterKey: context.clusterKey,
    clusterKeySource: context.clusterKeySource,
    // A kvraft-only cluster has no controller; an empty list keeps the field total for callers.
    controller: { replicas: [...(file.controller?.replicas ?? [])] },
    groups: new Map(groups),
    kvraft: file.kvraft === undefined ? undefined : { replicas: [...file.kvraft.replicas] },
    metrics: file.metrics?.basePort === undefined ? undefined : { basePort: file.metrics.basePort },
  }
}
