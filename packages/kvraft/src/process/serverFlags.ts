import { Effect, Option } from "effect"
import { Flag } from "effect/cli"
import { CLIENT_KEY_ENV, type ClusterConfig, ConfigError, loadClusterConfig } from "../config/index.ts"
import { type JoinOptions, type LogFormat, StartupError } from "./serve.ts"

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
  join: Flag.Boolean("join").pipe(
    Flag.withDescription(
      "start a new member that joins the running group (with --id and --address; not in the config), as etcd's --initial-cluster-state existing",
    ),
    Flag.withDefault(false),
  ),
  id: Flag.Int("id").pipe(
    Flag.withDescription("with --join: the new member's id, never used in the group before (ids are single-use)"),
    Flag.optional,
  ),
  address: Flag.String("address").pipe(Flag.withDescription("with --join: the new member's host:port"), Flag.optional),
  peers: Flag.String("peers").pipe(
    Flag.withDescription(
      "with --join: comma-separated addresses of current members to ask where the group is (default: the group's replicas in the config)",
    ),
    Flag.optional,
  ),
  listen: Flag.String("listen").pipe(
    Flag.withDescription(
      "where to bind, when it is not the address the config advertises: a host (0.0.0.0, or this host's interface address) keeping each replica's advertised port, or host:port with --replica or --join",
    ),
    Flag.optional,
  ),
  metricsPort: Flag.Int("metrics-port").pipe(
    Flag.withDescription(
      "serve /metrics (Prometheus), /livez and /readyz at this port (on 127.0.0.1 unless --metrics-host), for every replica in this process",
    ),
    Flag.optional,
  ),
  metricsHost: Flag.String("metrics-host").pipe(
    Flag.withDescription(
      "with --metrics-port: the IP address to serve them on (default 127.0.0.1; 0.0.0.0 in a container, for probes and Prometheus)",
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
  readonly metricsHost: Option.Option<string>
  readonly listen: Option.Option<string>
  readonly join: boolean
  readonly id: Option.Option<number>
  readonly address: Option.Option<string>
  readonly peers: Option.Option<string>
}

/** The join options the flags ask for: undefined without --join; a StartupError when they are incomplete. */
export const joinFrom = (flags: ServerFlags): Effect.Effect<JoinOptions | undefined, StartupError> => {
  const id = Option.getOrUndefined(flags.id)
  const address = Option.getOrUndefined(flags.address)
  if (!flags.join) {
    if (id !== undefined || address !== undefined || Option.isSome(flags.peers)) {
      return Effect.fail(new StartupError("--id, --address and --peers go with --join (a new member)"))
    }
    return Effect.succeed(undefined)
  }
  if (id === undefined || address === undefined) {
    return Effect.fail(new StartupError("--join needs the new member's --id and --address"))
  }
  const contacts = Option.getOrUndefined(flags.peers)
  return Effect.succeed({
    id,
    address,
    contacts: contacts
      ?.split(",")
      .map((a) => a.trim())
      .filter((a) => a !== ""),
  })
}

/** Loads the cluster config, turning its problems into a startup error that lists them. */
export const loadConfigFor = (flags: ServerFlags): Effect.Effect<ClusterConfig, StartupError> =>
  Effect.try({
    // A server seals with the cluster key, never with a client's key that happens to be in its environment.
    try: () => loadClusterConfig(flags.config, { env: { ...process.env, [CLIENT_KEY_ENV]: undefined } }),
    catch: (error) => new StartupError(error instanceof ConfigError ? error.message : String(error)),
  })

export const dataDirFrom = (flags: ServerFlags, config: ClusterConfig): string =>
  Option.getOrElse(flags.data, () => config.dataDir)
