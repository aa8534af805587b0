/**
 * The single-group KV server: `bun run kvraft [--replica N] [--config cluster.toml] [--data DIR]`.
 * Without --replica every replica of the [kvraft] group runs in this process. A new member (not in
 * the config) joins the running group: `bun run kvraft --join --id N --address HOST:PORT`.
 */
import { Effect, Option } from "effect"
import { Command } from "effect/cli"
import {
  cliEnvironment,
  configuredLimits,
  dataDirFrom,
  joinFrom,
  loadConfigFor,
  makeKvServer,
  runServerMain,
  type ServerFlags,
  StartupError,
  serveReplicas,
  serverFlags,
  serverKeyGrants,
} from "../src/index.ts"

const serve = (flags: ServerFlags) =>
  Effect.gen(function* () {
    const config = yield* loadConfigFor(flags)
    if (config.kvraft === undefined) {
      return yield* Effect.fail(new StartupError(`${config.source} has no [kvraft] section to serve`))
    }
    const join = yield* joinFrom(flags)
    yield* serveReplicas({
      join,
      service: "kvraft",
      replicas: config.kvraft.replicas,
      preferredLeader: config.kvraft.preferredLeader,
      replica: Option.getOrUndefined(flags.replica),
      dataDir: dataDirFrom(flags, config),
      clusterKey: config.clusterKey,
      keys: serverKeyGrants(config),
      metricsPort: Option.getOrUndefined(flags.metricsPort),
      metricsHost: Option.getOrUndefined(flags.metricsHost),
      listen: Option.getOrUndefined(flags.listen),
      build: (_k, { id, peers, storageName, join, onFsync, preferredLeader }) =>
        makeKvServer({
          id,
          peers,
          storageName,
          join,
          onFsync,
          preferredLeader,
          maxRaftStateBytes: config.maxRaftStateBytes,
          limits: configuredLimits(config),
          leases: config.leases,
        }).pipe(
          Effect.map((server) => ({
            rsm: server.rsm,
            gauges: server.gauges,
          })),
        ),
    })
  })

const command = Command.make("kvraft", serverFlags, (flags) =>
  Effect.sync(() => runServerMain("kvraft", serve(flags), flags.logFormat)),
).pipe(Command.withDescription("Run replicas of the single-group kv service"))

Command.run(command, { version: "0.1.0" })
  .pipe(Effect.provide(cliEnvironment), Effect.runPromise)
  .catch(() => {
    process.exitCode = 2
  })
