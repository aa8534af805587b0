import { Effect, Option } from "effect"
import { Flag } from "effect/cli"
import { type ClusterConfig, ConfigError, loadClusterConfig } from "../config/index.ts"
import { type LogFormat, StartupError } from "./serve.ts"

/** Flags every server binary takes. */
export const serverFlags = {
  config: Flag.String("config").pipe(
    Flag.withDescription("cluster configuration file"),
    Flag.withDefault("cluster.toml"),
  ),
  data: Flag.String("data").pipe(
    Flag.withDescription("data directory (overrides dataDir in the config)"),
    Flag.optional,
  ),
  replica: Flag.Int("replica").pipe(
    Flag.withDescription("run only this replica (0-based); without it every replica runs in this process"),
    Flag.optional,
  ),
  logFormat: Flag.Literals("log-format", ["text", "json"]).pipe(
    Flag.withDescription("log line format"),
    Flag.withDefault("text"),
  ),
  metricsPort: Flag.Int("metrics-port").pipe(
    Flag.withDescription(
      "serve /metrics (Prometheus), /livez and /readyz on 127.0.0.1 at this port, for every replica in this process",
    ),
    Flag.optional,
  ),
}

export interface ServerFlags {
  readonly config: string
  readonly data: Option.Option<string>
  readonly replica: Option.Option<number>
  readonly logFormat: LogFormat
  readonly metricsPort: Option.Option<number>
}

/** Loads the cluster config, turning its problems into a startup error that lists them. */
export const loadConfigFor = (flags: ServerFlags): Effect.Effect<ClusterConfig, StartupError> =>
  Effect.try({
    try: () => loadClusterConfig(flags.config),
    catch: (error) => new StartupError(error instanceof ConfigError ? error.message : String(error)),
  })

export const dataDirFrom = (flags: ServerFlags, config: ClusterConfig): string =>
  Option.getOrElse(flags.data, () => config.dataDir)
