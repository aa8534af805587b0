/**
 * A test file's kvraft processes: a temporary directory, a cluster.toml on free ports, replicas
 * started from the kvraft binary, and client nodes; everything stopped and removed after the file.
 */
import { afterAll } from "bun:test"
import { join } from "node:path"
import type { RpcNodeShape } from "@kv/rpc"
import { freeUdpPorts, type LaunchOptions, ProcessGroup, tempDir, udpClientNode, writeFile } from "@kv/testkit"
import { Effect, Exit, Scope } from "effect"

export const KVRAFT_BIN = join(import.meta.dir, "../../bin/kvraft.ts")

export interface KvGroupFiles {
  /** The cluster.toml's path. */
  readonly config: string
  readonly replicas: readonly string[]
}

export const kvProcesses = (name: string) => {
  const processes = new ProcessGroup()
  const dir = tempDir(name)
  const scope = Effect.runSync(Scope.make())
  afterAll(async () => {
    await processes.killAll()
    await Effect.runPromise(Scope.close(scope, Exit.void))
    dir.remove()
  })
  return {
    processes,
    dir,
    run: <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect),
    /** A cluster.toml for a group of `count` replicas on free ports; `extra` goes above [kvraft]. */
    group: async (count = 3, extra = "", file = "cluster.toml"): Promise<KvGroupFiles> => {
      const replicas = (await freeUdpPorts(count)).map((p) => `127.0.0.1:${p}`)
      const config = join(dir.path, file)
      writeFile(config, `dataDir = "./data"\n${extra}[kvraft]\nreplicas = ${JSON.stringify(replicas)}\n`)
      return { config, replicas }
    },
    /** Starts replica `k` of the group in `config` as process `replica-<k>` (or `name`), with more `args` if given. */
    start: (
      config: string,
      k: number,
      options: LaunchOptions & { readonly name?: string; readonly args?: readonly string[] } = {},
    ) => {
      const { name, args = [], ...launch } = options
      return processes.start(
        name ?? `replica-${k}`,
        ["bun", KVRAFT_BIN, "--replica", String(k), "--config", config, ...args],
        { cwd: dir.path, ...launch },
      )
    },
    /** A client RpcNode (sealing with `key`, if given), closed after the file. */
    node: (key?: string): Promise<RpcNodeShape> => udpClientNode(scope, key),
  }
}
