/**
 * Real processes for tests: the launcher's process groups, commands, temporary directories and
 * free ports (one implementation with the bench and `bun run cluster`), and a UDP client node.
 */
import { writeFileSync } from "node:fs"
import { RpcNode, type RpcNodeShape, Transport } from "@kv/rpc"
import { Context, Effect, Layer, type Scope } from "effect"

export {
  type CommandResult,
  freeUdpPorts,
  type Launched,
  type LaunchOptions,
  ProcessGroup,
  pollUntil,
  runCommand,
  type TempDir,
  tempDir,
} from "@kv/launcher"

export const writeFile = (path: string, text: string): void => writeFileSync(path, text)

/** A client RpcNode on an ephemeral UDP port of 127.0.0.1 (sealing with `key`, if given), closed with `scope`. */
export const udpClientNode = (scope: Scope.Scope, key?: string): Promise<RpcNodeShape> =>
  Effect.runPromise(
    Layer.buildWithScope(
      RpcNode.layer.pipe(
        Layer.provide(Transport.layerUdp({ bind: "127.0.0.1:0", ...(key === undefined ? {} : { key }) })),
      ),
      scope,
    ).pipe(Effect.map((context) => Context.get(context, RpcNode))),
  )
