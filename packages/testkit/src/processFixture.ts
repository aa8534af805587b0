/**
 * What a test file of real server processes sets up at its top: the processes it starts, a
 * temporary directory for their data and a scope for its UDP clients, all stopped, closed and
 * removed once the file's tests are done (killed: a test that means to stop them gracefully does so
 * itself).
 */
import { afterAll } from "bun:test"
import type { RpcNodeShape } from "@kv/rpc"
import { Effect, Exit, Scope } from "effect"
import { ProcessGroup, type TempDir, tempDir, udpClientNode } from "./realProcesses.ts"

export interface ProcessFixture {
  readonly processes: ProcessGroup
  readonly dir: TempDir
  readonly scope: Scope.Scope
  /** A UDP client node on 127.0.0.1 (with the cluster key `key`, if given) that lives as long as the fixture. */
  rpcNode(key?: string): Promise<RpcNodeShape>
}

/** Registers the cleanup with the calling file's `afterAll`; `name` prefixes the directory's name. */
export const processFixture = (name: string): ProcessFixture => {
  const processes = new ProcessGroup()
  const dir = tempDir(name)
  const scope = Effect.runSync(Scope.make())
  afterAll(async () => {
    await processes.killAll()
    await Effect.runPromise(Scope.close(scope, Exit.void))
    dir.remove()
  })
  return { processes, dir, scope, rpcNode: (key) => udpClientNode(scope, key) }
}
