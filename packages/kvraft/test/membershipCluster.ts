/**
 * A kvraft group of real processes whose membership the tests change: the bootstrap replicas of a
 * cluster.toml, new members started with --join, concurrent clients recording a history, and the
 * end-of-run checks (every acknowledged append present exactly once, linearizable history).
 */
import { expect } from "bun:test"
import { join } from "node:path"
import type { RpcNodeShape } from "@kv/rpc"
import {
  checkLinearizable,
  freeUdpPorts,
  HistoryRecorder,
  type KvInput,
  ProcessGroup,
  pollUntil,
  type TempDir,
  tempDir,
  udpClientNode,
  writeFile,
} from "@kv/testkit"
import { Effect, Exit, Scope } from "effect"
import {
  type KvClientShape,
  type MemberClientShape,
  makeKvClient,
  makeMemberClient,
  type ReplaceProgress,
} from "../src/index.ts"

const BIN = join(import.meta.dir, "../bin/kvraft.ts")

export const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)

export class MemberCluster {
  readonly processes = new ProcessGroup()
  readonly dir: TempDir
  readonly scope = Effect.runSync(Scope.make())
  readonly config: string
  /** Every address a member of this test may use: the bootstrap replicas', then the new members'. */
  readonly addresses: readonly string[]
  readonly bootstrap: readonly string[]
  /** The progress `replace` reported, for failure output. */
  readonly progress: string[] = []

  private constructor(name: string, addresses: readonly string[], bootstrap: number) {
    this.dir = tempDir(name)
    this.addresses = addresses
    this.bootstrap = addresses.slice(0, bootstrap)
    this.config = join(this.dir.path, "cluster.toml")
    writeFile(
      this.config,
      `dataDir = "./data"\nmaxRaftStateBytes = 32768\n[kvraft]\nreplicas = ${JSON.stringify(this.bootstrap)}\n`,
    )
  }

  /** `bootstrap` replicas in cluster.toml and room for `extra` new members (ids bootstrap+1...). */
  static async create(name: string, bootstrap: number, extra: number): Promise<MemberCluster> {
    const ports = await freeUdpPorts(bootstrap + extra)
    return new MemberCluster(
      name,
      ports.map((p) => `127.0.0.1:${p}`),
      bootstrap,
    )
  }

  /** Member id's address (ids are 1-based, bootstrap replica k has id k + 1). */
  address(id: number): string {
    return this.addresses[id - 1]!
  }

  /** Starts member `id`: a bootstrap replica by --replica, any other one with --join. */
  start(id: number): void {
    const args =
      id <= this.bootstrap.length
        ? ["--replica", String(id - 1)]
        : ["--join", "--id", String(id), "--address", this.address(id), "--peers", this.addresses.join(",")]
    this.processes.start(`m${id}`, ["bun", BIN, ...args, "--config", this.config], { cwd: this.dir.path })
  }

  kill(id: number): Promise<number | undefined> {
    return this.processes.kill(`m${id}`)
  }

  rpc(): Promise<RpcNodeShape> {
    return udpClientNode(this.scope)
  }

  async members(): Promise<MemberClientShape> {
    return run(makeMemberClient(await this.rpc(), { servers: this.addresses, deadlineMs: 30_000 }))
  }

  onProgress = (p: ReplaceProgress): void => {
    this.progress.push(p.step === "done" ? "done" : JSON.stringify(p))
  }

  dumpOutput(ids: readonly number[]): void {
    console.error(`--- replace progress\n${this.progress.slice(-30).join("\n")}`)
    for (const id of ids) console.error(`--- m${id}\n${this.processes.output(`m${id}`).slice(-2500)}`)
  }

  async close(): Promise<void> {
    await this.processes.killAll()
    await Effect.runPromise(Scope.close(this.scope, Exit.void))
    this.dir.remove()
  }
}

/**
 * Clients appending to their own keys and reading them, each through its own kvraft client that
 * knows only the bootstrap replicas (members added later are learned from leader hints).
 */
export class ClientLoad {
  readonly history = new HistoryRecorder()
  completed = 0
  private done = false
  private readonly appended: Map<string, string[]>[] = []
  private readonly loops: Promise<void>[] = []
  private readonly clients: KvClientShape[] = []

  static async start(cluster: MemberCluster, n: number): Promise<ClientLoad> {
    const load = new ClientLoad()
    for (let c = 0; c < n; c++) {
      load.clients.push(
        await run(makeKvClient(await cluster.rpc(), { servers: cluster.bootstrap, deadlineMs: 60_000 })),
      )
    }
    load.clients.forEach((client, c) => {
      const mine = new Map<string, string[]>()
      load.appended.push(mine)
      load.loops.push(load.loop(client, c, mine))
    })
    return load
  }

  private async record(c: number, input: KvInput, op: () => Effect.Effect<string | undefined, unknown>) {
    const token = this.history.begin(c, input)
    const exit = await Effect.runPromiseExit(op())
    if (Exit.isFailure(exit)) {
      this.history.unknown(token)
      throw new Error(`client ${c}: ${input.op} ${input.key} failed: ${String(exit.cause)}`)
    }
    this.history.end(token, typeof exit.value === "string" ? exit.value : undefined)
    this.completed++
    return exit.value
  }

  private async loop(client: KvClientShape, c: number, mine: Map<string, string[]>) {
    for (let j = 0; !this.done; j++) {
      const key = `c${c}-k${j % 3}`
      if (j % 3 === 2) {
        await this.record(c, { op: "get", key }, () => client.get(key))
      } else {
        const value = `x ${c} ${j} y;`
        await this.record(c, { op: "append", key, value }, () => Effect.as(client.append(key, value), undefined))
        mine.set(key, [...(mine.get(key) ?? []), value])
      }
    }
  }

  /** Waits while the clients complete `n` more operations (a client's failure ends the wait at once). */
  async whileClientsComplete(n: number): Promise<void> {
    const target = this.completed + n
    await Promise.race([
      pollUntil(`the clients to complete ${n} more operations`, () => this.completed >= target, { timeoutMs: 30_000 }),
      Promise.all(this.loops).then(() => {
        throw new Error("the clients stopped")
      }),
    ])
  }

  /** Stops the clients, reads every key back and checks the history. */
  async finish(): Promise<void> {
    this.done = true
    await Promise.all(this.loops)
    const reader = this.clients[0]!
    for (const mine of this.appended) {
      for (const [key, values] of mine) {
        const value = await this.record(0, { op: "get", key }, () => reader.get(key))
        // Every acknowledged append exactly once, in order.
        expect(value).toBe(values.join(""))
      }
    }
    const ops = this.history.history()
    const verdict = checkLinearizable(ops)
    console.log(`${ops.length} operations; linearizable: ${verdict.ok}`)
    if (!verdict.ok) throw new Error(verdict.explanation)
  }

  /** Stops the loops without checking (after a failure). */
  async abandon(): Promise<void> {
    this.done = true
    await Promise.allSettled(this.loops)
  }
}
