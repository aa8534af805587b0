/**
 * The shard controller: `bun run shardctrler [--replica N] [--config cluster.toml] [--data DIR]`.
 * Without --replica every controller replica runs in this process.
 */
import {
  cliEnvironment,
  dataDirFrom,
  joinFrom,
  loadConfigFor,
  runServerMain,
  type ServerFlags,
  serveReplicas,
  serverFlags,
  serverKeyGrants,
} from "@kv/kvraft"
import { Effect, Option } from "effect"
import { Command } from "effect/cli"
import { makeControllerServer } from "../src/index.ts"

const serve = (flags: ServerFlags) =>
  Effect.gen(function* () {
    const config = yield* loadConfigFor(flags)
    const join = yield* joinFrom(flags)
    yield* serveReplicas({
      join,
      service: "controller",
      replicas: config.controller.replicas,
      preferredLeader: config.controller.preferredLeader,
      replica: Option.getOrUndefined(flags.replica),
      dataDir: dataDirFrom(flags, config),
      clusterKey: config.clusterKey,
      keys: serverKeyGrants(config),
      metricsPort: Option.getOrUndefined(flags.metricsPort),
      metricsHost: Option.getOrUndefined(flags.metricsHost),
      listen: Option.getOrUndefined(flags.listen),
      build: (_k, { id, peers, storageName, join, onFsync, preferredLeader }) =>
        makeControllerServer({
          id,
          peers,
          storageName,
          join,
          onFsync,
          preferredLeader,
          nShards: config.nShards,
          maxRaftStateBytes: config.maxRaftStateBytes,
        }).pipe(
          Effect.map((server) => ({
            rsm: server.rsm,
          })),
        ),
    })
  })

const command = Command.make("shardctrler", serverFlags, (flags) =>
  Effect.sync(() => runServerMain("shardctrler", serve(flags), flags.logFormat)),
).pipe(Command.withDescription("Run replicas of the shard controller"))

Command.run(command, { version: "0.1.0" })
  .pipe(Effect.provide(cliEnvironment), Effect.runPromise)
  .catch(() => {
    process.exitCode = 2
  })
