/**
 * The single-group KV server: `bun run kvraft [--replica N] [--config cluster.toml] [--data DIR]`.
 * Without --replica every replica of the [kvraft] group runs in this process.
 */
import { Effect, Option } from "effect"
import { Command } from "effect/cli"
import {
  cliEnvironment,
  dataDirFrom,
  loadConfigFor,
  makeKvServer,
  runServerMain,
  type ServerFlags,
  StartupError,
  serveReplicas,
  serverFlags,
} from "../src/index.ts"

const serve = (flags: ServerFlags) =>
  Effect.gen(function* () {
    const config = yield* loadConfigFor(flags)
    if (config.kvraft === undefined) {
      return yield* Effect.fail(new StartupError(`${config.source} has no [kvraft] section to serve`))
    }
    yield* serveReplicas({
      service: "kvraft",
      replicas: config.kvraft.replicas,
      replica: Option.getOrUndefined(flags.replica),
      dataDir: dataDirFrom(flags, config),
      clusterKey: config.clusterKey,
      metricsPort: Option.getOrUndefined(flags.metricsPort),
      build: (_k, { id, peers, storageName, onFsync }) =>
        makeKvServer({ id, peers, storageName, onFsync, maxRaftStateBytes: config.maxRaftStateBytes }).pipe(
          Effect.map((server) => ({ raft: server.rsm.raft, gauges: server.gauges })),
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
