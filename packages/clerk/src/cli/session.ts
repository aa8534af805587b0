import {
  type ClusterConfig,
  ConfigError,
  type KvClientShape,
  type KvGroupClientShape,
  loadClusterConfig,
  type MemberClientShape,
  makeKvClient,
  makeMemberClient,
} from "@kv/kvraft"
import { RpcNode, type RpcNodeShape, Transport } from "@kv/rpc"
import { type ControllerClientShape, makeControllerClient } from "@kv/shardctrler"
import { groupRpc, makeShardKvClient } from "@kv/shardkv"
import { Effect, Layer, ManagedRuntime } from "effect"
import { clientBind, configAddresses } from "../clientBind.ts"
import { groupServers, type MemberGroup } from "../members.ts"
import { ExitCode } from "./exitCodes.ts"

/** A failure the CLI reports with a message and a specific exit code. */
export class CliFailure extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message)
  }
}

export interface SessionOptions {
  readonly config: string
  readonly timeoutMs: number
}

export type DataService = "auto" | "sharded" | "kvraft"

/** One CLI invocation's connection: the parsed config and a UDP RpcNode on an ephemeral port. */
export class CliSession {
  private constructor(
    readonly config: ClusterConfig,
    readonly rpc: RpcNodeShape,
    private readonly runtime: ManagedRuntime.ManagedRuntime<RpcNode, unknown>,
    readonly timeoutMs: number,
  ) {}

  static async open(options: SessionOptions): Promise<CliSession> {
    let config: ClusterConfig
    try {
      config = loadClusterConfig(options.config)
    } catch (error) {
      throw new CliFailure(error instanceof ConfigError ? error.message : String(error), ExitCode.badInput)
    }
    const runtime = ManagedRuntime.make(
      RpcNode.layer.pipe(
        Layer.provide(
          Transport.layerUdp({
            bind: clientBind(configAddresses(config)),
            key: config.clientKey ?? config.clusterKey,
          }),
        ),
      ),
    )
    const rpc = await runtime.runPromise(RpcNode.useSync((r) => r))
    return new CliSession(config, rpc, runtime, options.timeoutMs)
  }

  run<A, E>(effect: Effect.Effect<A, E>): Promise<A> {
    return this.runtime.runPromise(effect)
  }

  /** The data client: the sharded cluster when the config has a controller (unless told "kvraft"). */
  dataClient(service: DataService): Promise<KvClientShape> {
    const sharded = this.config.controller.replicas.length > 0
    if (service === "sharded" || (service === "auto" && sharded)) {
      if (!sharded) throw new CliFailure(`${this.config.source} has no [controller]`, ExitCode.badInput)
      return this.run(
        makeShardKvClient(this.rpc, { controllers: this.config.controller.replicas, deadlineMs: this.timeoutMs }),
      )
    }
    const group = this.config.kvraft
    if (group === undefined) throw new CliFailure(`${this.config.source} has no [kvraft] section`, ExitCode.badInput)
    return this.run(makeKvClient(this.rpc, { servers: group.replicas, deadlineMs: this.timeoutMs }))
  }

  /**
   * The kvraft group's client, for leases and locks (`feature`), which only it has: `service` is
   * the command's --service, when it has one; "auto" is taken as kvraft only when the config has no
   * controller, so that a key is not put on a lease in one service and then looked for in the other.
   */
  kvraftClient(feature: string, service: DataService = "kvraft"): Promise<KvGroupClientShape> {
    const sharded = this.config.controller.replicas.length > 0
    if (service === "sharded" || (service === "auto" && sharded)) {
      throw new CliFailure(
        `${feature} need the kvraft service; the sharded service has none: add --service kvraft`,
        ExitCode.badInput,
      )
    }
    const group = this.config.kvraft
    if (group === undefined) {
      throw new CliFailure(
        `${feature} need the kvraft service: ${this.config.source} has no [kvraft] section`,
        ExitCode.badInput,
      )
    }
    return this.run(makeKvClient(this.rpc, { servers: group.replicas, deadlineMs: this.timeoutMs }))
  }

  controllerClient(): Promise<ControllerClientShape> {
    const replicas = this.config.controller.replicas
    if (replicas.length === 0) throw new CliFailure(`${this.config.source} has no [controller]`, ExitCode.badInput)
    return this.run(makeControllerClient(this.rpc, { controllers: replicas, deadlineMs: this.timeoutMs }))
  }

  /** The member admin client of one group (its addresses from the config, or the controller for a shard group). */
  memberClient(group: MemberGroup, deadlineMs = this.timeoutMs): Promise<MemberClientShape> {
    return this.run(
      groupServers(this.rpc, this.config, group, this.timeoutMs).pipe(
        Effect.mapError((e) =>
          "_tag" in e && e._tag === "Timeout" ? e : new CliFailure(e.message, ExitCode.badInput),
        ),
        Effect.flatMap((servers) =>
          makeMemberClient(typeof group === "object" ? groupRpc(this.rpc, group.gid) : this.rpc, {
            servers,
            deadlineMs,
          }),
        ),
      ),
    )
  }

  close(): Promise<void> {
    return this.runtime.dispose()
  }
}

/** Maps the errors operations fail with to an exit code and a message. */
export const classify = (error: unknown): CliFailure => {
  if (error instanceof CliFailure) return error
  const tag = (error as { _tag?: unknown } | null)?._tag
  const message = error instanceof Error ? error.message : String(error)
  switch (tag) {
    case "Timeout":
      return new CliFailure(`${message}: is the cluster running? (try \`bun run kv status\`)`, ExitCode.unreachable)
    case "OutcomeUnknown":
      return new CliFailure(
        `${message} (the write may or may not have happened: read the key to find out)`,
        ExitCode.unreachable,
      )
    case "LeaseNotFound":
      return new CliFailure(message, ExitCode.notFound)
    case "LockTimeout":
      return new CliFailure(`${message} (someone else holds it: see \`kv lock --help\`)`, ExitCode.notApplied)
    case "Compacted":
      return new CliFailure(message, ExitCode.compacted)
    case "LeaseLost":
      return new CliFailure(message, ExitCode.leaseLost)
    case "KvraftOnly":
      return new CliFailure(message, ExitCode.badInput)
    case "PermissionDenied":
      return new CliFailure(
        `permission denied: ${message} (the client key in KV_CLIENT_KEY does not allow this; see docs/operations.md, "Client keys and roles")`,
        ExitCode.rejected,
      )
    case "WatchRefused":
    case "ValueTooLarge":
    case "KeyTooLarge":
    case "SessionExpired":
    case "ControllerError":
    case "CrossShard":
    case "InvalidRequest":
      return new CliFailure(message, ExitCode.rejected)
    default:
      return new CliFailure(message, ExitCode.unreachable)
  }
}
