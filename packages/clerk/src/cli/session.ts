import { type ClusterConfig, ConfigError, type KvClientShape, loadClusterConfig, makeKvClient } from "@kv/kvraft"
import { RpcNode, type RpcNodeShape, Transport } from "@kv/rpc"
import { type ControllerClientShape, makeControllerClient } from "@kv/shardctrler"
import { type Effect, Layer, ManagedRuntime } from "effect"
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
      RpcNode.layer.pipe(Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0", key: config.clusterKey }))),
    )
    const rpc = await runtime.runPromise(RpcNode.useSync((r) => r))
    return new CliSession(config, rpc, runtime, options.timeoutMs)
  }

  run<A, E>(effect: Effect.Effect<A, E>): Promise<A> {
    return this.runtime.runPromise(effect)
  }

  kvraftClient(): Promise<KvClientShape> {
    const group = this.config.kvraft
    if (group === undefined) throw new CliFailure(`${this.config.source} has no [kvraft] section`, ExitCode.badInput)
    return this.run(makeKvClient(this.rpc, { servers: group.replicas, deadlineMs: this.timeoutMs }))
  }

  controllerClient(): Promise<ControllerClientShape> {
    const replicas = this.config.controller.replicas
    if (replicas.length === 0) throw new CliFailure(`${this.config.source} has no [controller]`, ExitCode.badInput)
    return this.run(makeControllerClient(this.rpc, { controllers: replicas, deadlineMs: this.timeoutMs }))
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
    case "ValueTooLarge":
    case "KeyTooLarge":
    case "SessionExpired":
    case "ControllerError":
      return new CliFailure(message, ExitCode.rejected)
    default:
      return new CliFailure(message, ExitCode.unreachable)
  }
}
