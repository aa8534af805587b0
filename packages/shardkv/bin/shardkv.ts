/**
 * Shard groups: `bun run shardkv --gid 100[,101,...] [--replica N] [--shared-wal] [--config cluster.toml]
 * [--data DIR]`. Without --replica every replica of each group runs in this process. With several
 * groups, --shared-wal puts all their replicas' Raft logs in one write-ahead log of the data
 * directory, so they share its fsyncs (as multi-Raft stores do).
 */
import {
  type ClusterConfig,
  canonicalAddress,
  cliEnvironment,
  configuredLimits,
  dataDirFrom,
  type JoinOptions,
  joinFrom,
  loadConfigFor,
  lockReplicaDir,
  type MetricsSource,
  runServerMain,
  type ServerFlags,
  SharedSockets,
  StartupError,
  serveReplicas,
  serverFlags,
  serverKeyGrants,
  startMetrics,
} from "@kv/kvraft"
import { makeReadyRounds, type ReadyRoundsShape, SHARED_WAL_DIR, Storage } from "@kv/raft"
import { Effect, Layer, Metric, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { type ConfigQueries, configQueriesFor, groupScope, makeShardKvServer } from "../src/index.ts"

const sharedWalFlushSeconds = Metric.histogram("kv_shared_wal_flush_seconds", {
  description:
    "Duration of one fdatasync of the shared write-ahead log; each makes durable the batches every replica of this process wrote before it",
  boundaries: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
})

/** `100` or `100,101,102`: distinct positive group ids. */
const parseGids = (text: string): number[] | undefined => {
  const gids = text.split(",").map((part) => Number(part.trim()))
  const valid = gids.every((gid) => Number.isSafeInteger(gid) && gid > 0) && new Set(gids).size === gids.length
  return valid ? gids : undefined
}

/**
 * Replicas of several groups given one address share a socket, so one process must serve them all:
 * names the groups to add to --gid when this process would serve only some of them.
 */
const sharedAddressProblem = (
  config: ClusterConfig,
  gids: readonly number[],
  replica: number | undefined,
): string | undefined => {
  const missing = new Set<number>()
  const shared: string[] = []
  for (const gid of gids) {
    for (const [k, address] of (config.groups.get(gid)?.replicas ?? []).entries()) {
      if (replica !== undefined && k !== replica) continue
      for (const [other, group] of config.groups) {
        const theirs = group.replicas[k]
        if (gids.includes(other) || theirs === undefined) continue
        if (canonicalAddress(theirs) !== canonicalAddress(address)) continue
        missing.add(other)
        shared.push(`group ${other} replica ${k} shares ${address} with group ${gid}`)
      }
    }
  }
  if (missing.size === 0) return undefined
  return `${shared.join("; ")} (in ${config.source}): one process serves every group on an address (--gid ${[...gids, ...missing].join(",")})`
}

const serve = (flags: ServerFlags & { readonly gid: string; readonly sharedWal: boolean }) =>
  Effect.gen(function* () {
    const config = yield* loadConfigFor(flags)
    const gids = parseGids(flags.gid)
    if (gids === undefined) {
      return yield* Effect.fail(new StartupError(`--gid ${flags.gid}: give a group id or several, comma-separated`))
    }
    for (const gid of gids) {
      if (!config.groups.has(gid)) {
        const known = [...config.groups.keys()].join(", ") || "none"
        return yield* Effect.fail(new StartupError(`group ${gid} is not in ${config.source} (groups: ${known})`))
      }
    }
    const join = yield* joinFrom(flags)
    if (join !== undefined && gids.length > 1) {
      return yield* Effect.fail(new StartupError("--join starts a new member of one group: give one --gid"))
    }
    const shareProblem = sharedAddressProblem(config, gids, Option.getOrUndefined(flags.replica))
    if (shareProblem !== undefined) return yield* Effect.fail(new StartupError(shareProblem))
    const dataDir = dataDirFrom(flags, config)
    const sockets = new SharedSockets()
    let storage: Layer.Layer<Storage> | undefined
    if (flags.sharedWal) {
      // One process per shared log: the replicas' own locks do not cover the log they share.
      yield* lockReplicaDir(dataDir, SHARED_WAL_DIR).pipe(Effect.mapError((e) => new StartupError(e.message)))
      const onFlush = (seconds: number) => Effect.runSync(Metric.update(sharedWalFlushSeconds, seconds))
      const context = yield* Layer.build(Storage.layerShared(dataDir, { onFlush })).pipe(
        Effect.mapError(
          (e) =>
            new StartupError(
              `shared write-ahead log in ${dataDir} is damaged: ${e.message} (refusing to start; restore it from a backup)`,
            ),
        ),
      )
      storage = Layer.succeedContext(context)
    }
    // One endpoint for every group's replicas when this process runs several.
    const metricsPort = Option.getOrUndefined(flags.metricsPort)
    const sources: MetricsSource[] = []
    if (metricsPort !== undefined && gids.length > 1) {
      yield* startMetrics(metricsPort, Option.getOrUndefined(flags.metricsHost), sources)
    }
    // Co-hosted groups take their Readies in the same rounds: one write and one datagram per peer
    // process carry every group's batch.
    const readyRounds = gids.length > 1 ? yield* makeReadyRounds : undefined
    // And one controller question answers all of them (configQueries.ts), not one per group.
    const configQueries = gids.length > 1 ? configQueriesFor() : undefined
    const serving = {
      flags,
      readyRounds,
      configQueries,
      config,
      join,
      dataDir,
      storage,
      sockets,
      metricsPort,
      metricsSources: gids.length > 1 ? sources : undefined,
    }
    yield* Effect.forEach(gids, (gid) => serveGroup({ ...serving, gid }), { concurrency: "unbounded", discard: true })
  })

interface GroupServing {
  readonly flags: ServerFlags
  readonly config: ClusterConfig
  readonly gid: number
  readonly join: JoinOptions | undefined
  readonly dataDir: string
  readonly storage: Layer.Layer<Storage> | undefined
  readonly sockets: SharedSockets
  readonly readyRounds: ReadyRoundsShape | undefined
  readonly configQueries: ConfigQueries | undefined
  readonly metricsPort: number | undefined
  /** Set when the process serves one metrics endpoint for several groups. */
  readonly metricsSources: MetricsSource[] | undefined
}

const serveGroup = ({
  flags,
  config,
  gid,
  join,
  dataDir,
  storage,
  sockets,
  readyRounds,
  configQueries,
  metricsPort,
  metricsSources,
}: GroupServing) =>
  Effect.gen(function* () {
    const group = config.groups.get(gid)
    if (group === undefined) return yield* Effect.fail(new StartupError(`group ${gid} is not in ${config.source}`))
    yield* serveReplicas({
      join,
      service: `group-${gid}`,
      replicas: group.replicas,
      preferredLeader: group.preferredLeader,
      replica: Option.getOrUndefined(flags.replica),
      dataDir,
      clusterKey: config.clusterKey,
      keys: serverKeyGrants(config),
      metricsPort: metricsSources === undefined ? metricsPort : undefined,
      metricsHost: Option.getOrUndefined(flags.metricsHost),
      metricsSources,
      storage,
      scope: groupScope(gid),
      sockets,
      readyRounds,
      listen: Option.getOrUndefined(flags.listen),
      build: (_k, { id, peers, storageName, join, onFsync, preferredLeader }) =>
        makeShardKvServer({
          gid,
          id,
          peers,
          storageName,
          join,
          onFsync,
          preferredLeader,
          ...(configQueries === undefined ? {} : { configQueries }),
          controllers: config.controller.replicas,
          nShards: config.nShards,
          maxRaftStateBytes: config.maxRaftStateBytes,
          limits: configuredLimits(config),
        }).pipe(
          Effect.map((server) => ({
            rsm: server.rsm,
            gauges: () => {
              const s = server.status()
              const count = (state: string) => s.shards.filter((x) => x === state).length
              return {
                kv_shard_config_num: s.configNum,
                kv_shards_serving: count("Serving") + count("AwaitingGc"),
                kv_shards_pulling: count("Pulling"),
                kv_shards_handing_off: count("HandingOff"),
                kv_keys: s.keys.reduce((a, b) => a + b, 0),
                kv_client_sessions: server.machine().sessionCount(),
              }
            },
          })),
        ),
    })
  })

const command = Command.make(
  "shardkv",
  {
    ...serverFlags,
    gid: Flag.String("gid").pipe(
      Flag.withDescription("the group to serve (a [groups.<gid>] section), or several, comma-separated: 100,101,102"),
    ),
    sharedWal: Flag.Boolean("shared-wal").pipe(
      Flag.withDescription(
        "keep the Raft logs of every replica in this process in one write-ahead log of the data directory (shared-wal/), sharing its fsyncs; snapshots stay per replica",
      ),
      Flag.withDefault(false),
    ),
  },
  (flags) => Effect.sync(() => runServerMain("shardkv", serve(flags), flags.logFormat)),
).pipe(Command.withDescription("Run replicas of one or several shard groups"))

Command.run(command, { version: "0.1.0" })
  .pipe(Effect.provide(cliEnvironment), Effect.runPromise)
  .catch(() => {
    process.exitCode = 2
  })
