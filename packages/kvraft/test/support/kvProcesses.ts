/**
 * A test file's kvraft processes: a temporary directory, a cluster.toml on free ports, replicas
 * started from the kvraft binary, and client nodes; everything stopped and removed after the file
 * (testkit's processFixture).
 */
import { join } from "node:path"
import { freeUdpPorts, type LaunchOptions, processFixture, serverBins, writeFile } from "@kv/testkit"
import { Effect } from "effect"

export const KVRAFT_BIN = serverBins.kvraft

export interface KvGroupFiles {
  /** The cluster.toml's path. */
  readonly config: string
  readonly replicas: readonly string[]
}

export const kvProcesses = (name: string) => {
  const { processes, dir, rpcNode } = processFixture(name)
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
    node: rpcNode,
  }
}
