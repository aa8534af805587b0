import type { MemoryDisk, Storage } from "@kv/raft"
import type { RpcNode, RpcNodeShape, SimNetwork } from "@kv/rpc"
import { type Effect, Exit, Scope } from "effect"
import type { SimWorld } from "./simWorld.ts"

/**
 * Servers and clients as "processes" of one seeded world, with Promise methods for the lab
 * harnesses, whose tests are written as async bodies run by `world.drive`: each server gets an
 * RpcNode at its address and memory storage that survives its crashes (only synced data does);
 * stopping a server drops everything it held in memory. Every call settles in virtual time.
 */
export class SimProcesses {
  private clientScope: Scope.Closeable | undefined

  constructor(readonly world: SimWorld) {}

  get network(): SimNetwork {
    return this.world.network
  }

  get disks(): Map<string, MemoryDisk> {
    return this.world.disks
  }

  /** Starts (or restarts) the server at `address`, built by `build` with its RpcNode and Storage. */
  async start<A, E>(address: string, build: Effect.Effect<A, E, Scope.Scope | RpcNode | Storage>): Promise<A> {
    const exit = await this.world.driver.exit(this.world.start(address, build))
    if (Exit.isFailure(exit)) {
      await this.stop(address)
      throw new Error(`server ${address} failed to start: ${String(exit.cause)}`)
    }
    return exit.value
  }

  /** Kills the server at `address` (no-op when it is not running). */
  stop(address: string): Promise<void> {
    return this.world.promise(this.world.crash(address))
  }

  isRunning(address: string): boolean {
    return this.world.isRunning(address)
  }

  /** An RpcNode for a client at `address`; closed by cleanup(). */
  async client(address: string): Promise<RpcNodeShape> {
    this.clientScope ??= await this.world.promise(Scope.make())
    return this.world.promise(this.world.client(address).pipe(Scope.provide(this.clientScope)))
  }

  /** `effect` run in the world (a clerk's operation, an admin call), settling in virtual time. */
  run<A, E>(effect: Effect.Effect<A, E>): Promise<A> {
    return this.world.promise(effect)
  }

  async cleanup(): Promise<void> {
    for (const address of this.world.runningAddresses()) await this.stop(address)
    const scope = this.clientScope
    this.clientScope = undefined
    if (scope !== undefined) await this.world.promise(Scope.close(scope, Exit.void))
  }
}
