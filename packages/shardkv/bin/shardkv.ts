/**
 * A shard group: `bun run shardkv --gid 100 [--replica N] [--config cluster.toml] [--data DIR]`.
 * Without --replica every replica of the group runs in this process.
 */
import {
  cliEnvironment,
  configuredLimits,
  dataDirFrom,
  joinFrom,
  loadConfigFor,
  runServerMain,
  type ServerFlags,
  StartupError,
  serveReplicas,
  serverFlags,
  serverKeyGrants,
} from "@kv/kvraft"
import { Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { makeShardKvServer } from "../src/index.ts"

const serve = (flags: ServerFlags & { readonly gid: number }) =>
  Effect.gen(function* () {
    const config = yield* loadConfigFor(flags)
    const group = config.groups.get(flags.gid)
    if (group === undefined) {
      const known = [...config.groups.keys()].join(", ") || "none"
      return yield* Effect.fail(new StartupError(`group ${flags.gid} is not in ${config.source} (groups: ${known})`))
    }
    const join = yield* joinFrom(flags)
    yield* serveReplicas({
      join,
      service: `group-${flags.gid}`,
      replicas: group.replicas,
      replica: Option.getOrUndefined(flags.replica),
      dataDir: dataDirFrom(flags, config),
      clusterKey: config.clusterKey,
      keys: serverKeyGrants(config),
      metricsPort: Option.getOrUndefined(flags.metricsPort),
      listen: Option.getOrUndefined(flags.listen),
      build: (_k, { id, peers, storageName, join, onFsync }) =>
        makeShardKvServer({
          gid: flags.gid,
          id,
          peers,
          storageName,
          join,
          onFsync,
          controllers: config.controller.replicas,
          nShards: config.nShards,
          maxRaftStateBytes: config.maxRaftStateBytes,
          limits: configuredLimits(config),
        }).pipe(
          Effect.map((server) => ({
            raft: server.rsm.raft,
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
  { ...serverFlags, gid: Flag.Int("gid").pipe(Flag.withDescription("the group to serve (a [groups.<gid>] section)")) },
  (flags) => Effect.sync(() => runServerMain("shardkv", serve(flags), flags.logFormat)),
).pipe(Command.withDescription("Run replicas of one shard group"))

Command.run(command, { version: "0.1.0" })
  .pipe(Effect.provide(cliEnvironment), Effect.runPromise)
  .catch(() => {
    process.exitCode = 2
  })
