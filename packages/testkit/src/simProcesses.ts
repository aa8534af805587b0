import { type MemoryDisk, Storage } from "@kv/raft"
import { RpcNode, type RpcNodeShape, type SimNetwork, Transport } from "@kv/rpc"
import { Context, Effect, Exit, Layer, Scope } from "effect"

/**
 * Servers and clients as "processes" on a SimNetwork for scenario tests: each server gets an
 * RpcNode at its address and memory storage that survives its crashes (only synced data does).
 * Stopping a server drops everything it held in memory.
 */
export class SimProcesses {
  readonly disks = new Map<string, MemoryDisk>()
  private readonly servers = new Map<string, Scope.Closeable>()
  private readonly clients: Scope.Closeable[] = []

  constructor(readonly network: SimNetwork) {}

  /** Starts (or restarts) the server at `address`, built by `build` with its RpcNode and Storage. */
  async start<A, E>(address: string, build: Effect.Effect<A, E, Scope.Scope | RpcNode | Storage>): Promise<A> {
    await this.stop(address)
    const scope = await Effect.runPromise(Scope.make())
    const layer = RpcNode.layer.pipe(
      Layer.provide(Transport.layerSim(this.network, address)),
      Layer.merge(Storage.layerMemory(this.disks)),
    )
    const exit = await Effect.runPromiseExit(
      Effect.gen(function* () {
        const context = yield* Layer.buildWithScope(layer, scope)
        return yield* build.pipe(Effect.provideContext(context), Scope.provide(scope))
      }),
    )
    if (Exit.isFailure(exit)) {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      throw new Error(`server ${address} failed to start: ${String(exit.cause)}`)
    }
    this.servers.set(address, scope)
    return exit.value
  }

  /** Kills the server at `address` (no-op when it is not running). */
  async stop(address: string): Promise<void> {
    const scope = this.servers.get(address)
    if (scope === undefined) return
    this.servers.delete(address)
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }

  isRunning(address: string): boolean {
    return this.servers.has(address)
  }

  /** An RpcNode for a client at `address`; closed by cleanup(). */
  async client(address: string): Promise<RpcNodeShape> {
    const scope = await Effect.runPromise(Scope.make())
    this.clients.push(scope)
    return Effect.runPromise(
      Layer.buildWithScope(RpcNode.layer.pipe(Layer.provide(Transport.layerSim(this.network, address))), scope).pipe(
        Effect.map((context): RpcNodeShape => Context.get(context, RpcNode)),
      ),
    )
  }

  async cleanup(): Promise<void> {
    for (const address of [...this.servers.keys()]) await this.stop(address)
    for (const scope of this.clients) await Effect.runPromise(Scope.close(scope, Exit.void))
    this.clients.length = 0
  }
}
