/**
 * The lab's kvraft harness (kvraft/config.go) over SimNetwork: servers with memory storage,
 * clerks that each reach a chosen set of servers, partitions, crash/restart, and a recorder of
 * every client operation for the linearizability check.
 */
import type { NodeId } from "@kv/raft"
import { SimNetwork } from "@kv/rpc"
import { checkLinearizable, HistoryRecorder, type KvInput, SimProcesses } from "@kv/testkit"
import { Effect, Exit } from "effect"
import { type KvClientShape, type KvServerShape, makeKvClient, makeKvServer } from "../../src/index.ts"

export const ELECTION_TIMEOUT_MS = 1_000

export interface KvLabOptions {
  readonly seed: number
  readonly unreliable?: boolean
  /** Lab maxraftstate: > 0 snapshots at that many bytes; -1 never snapshots. */
  readonly maxRaftStateBytes?: number
}

export interface Clerk {
  readonly id: number
  readonly address: string
  readonly client: KvClientShape
}

const serverAddress = (i: number) => `kv-${i}`

export class KvLab {
  readonly network: SimNetwork
  readonly processes: SimProcesses
  readonly history = new HistoryRecorder()
  private readonly running: (KvServerShape | undefined)[]
  private readonly peers: Record<number, string> = {}
  /** Which servers each server or clerk address can reach; absent = all. */
  private readonly reach = new Map<string, Set<string>>()
  private nextClerk = 0
  private readonly startedAt = Date.now()
  ops = 0

  constructor(
    readonly n: number,
    readonly options: KvLabOptions,
  ) {
    this.network = new SimNetwork({ seed: options.seed })
    this.network.setUnreliable(options.unreliable ?? false)
    this.processes = new SimProcesses(this.network)
    this.network.setLinkFilter((from, to) => this.canReach(from, to) && this.canReach(to, from))
    this.running = new Array(n).fill(undefined)
    for (let i = 0; i < n; i++) this.peers[i + 1] = serverAddress(i)
  }

  static async make(n: number, options: KvLabOptions): Promise<KvLab> {
    const lab = new KvLab(n, options)
    for (let i = 0; i < n; i++) await lab.startServer(i)
    return lab
  }

  private canReach(from: string, to: string): boolean {
    const allowed = this.reach.get(from)
    return allowed === undefined || !to.startsWith("kv-") || allowed.has(to)
  }

  async startServer(i: number): Promise<void> {
    this.running[i] = undefined
    this.running[i] = await this.processes.start(
      serverAddress(i),
      makeKvServer({
        id: (i + 1) as NodeId,
        peers: this.peers,
        maxRaftStateBytes: this.options.maxRaftStateBytes,
        seed: this.options.seed + 7919 * i,
      }),
    )
  }

  /** Stops server i abruptly; only what it synced survives. */
  async shutdownServer(i: number): Promise<void> {
    this.running[i] = undefined
    await this.processes.stop(serverAddress(i))
  }

  server(i: number): KvServerShape | undefined {
    return this.running[i]
  }

  /** A clerk that knows every server but can only reach those in `to` (default all). */
  async makeClerk(to?: readonly number[]): Promise<Clerk> {
    const id = this.nextClerk++
    const address = `clerk-${id}`
    const rpc = await this.processes.client(address)
    const client = await Effect.runPromise(
      makeKvClient(rpc, { servers: Object.values(this.peers), deadlineMs: 60_000, perServerMs: 500 }),
    )
    if (to !== undefined) this.connectClerk({ id, address, client }, to)
    return { id, address, client }
  }

  connectClerk(clerk: Clerk, to: readonly number[]): void {
    this.reach.set(clerk.address, new Set(to.map(serverAddress)))
  }

  /** Servers in p1 reach only p1, p2 only p2 (clerks keep their own reach). */
  partition(p1: readonly number[], p2: readonly number[]): void {
    for (const i of p1) this.reach.set(serverAddress(i), new Set(p1.map(serverAddress)))
    for (const i of p2) this.reach.set(serverAddress(i), new Set(p2.map(serverAddress)))
  }

  connectAll(): void {
    for (let i = 0; i < this.n; i++) this.reach.delete(serverAddress(i))
  }

  connectAllClerks(clerks: readonly Clerk[]): void {
    for (const c of clerks) this.reach.delete(c.address)
  }

  /** The leader among running servers, if one claims it. */
  leader(): number | undefined {
    let best: number | undefined
    let bestTerm = -1
    for (let i = 0; i < this.n; i++) {
      const s = this.running[i]?.status()
      if (s !== undefined && s.role === "leader" && s.term > bestTerm) {
        best = i
        bestTerm = s.term
      }
    }
    return best
  }

  /** The lab's make_partition: a majority p1 without the leader, and p2 holding the leader. */
  makePartition(): { p1: number[]; p2: number[] } {
    const l = this.leader() ?? 0
    const others = Array.from({ length: this.n }, (_, i) => i).filter((i) => i !== l)
    const p1 = others.slice(0, Math.floor(this.n / 2) + 1)
    const p2 = [...others.slice(Math.floor(this.n / 2) + 1), l]
    return { p1, p2 }
  }

  /** Largest persisted Raft state among running servers. */
  logSize(): number {
    let max = 0
    for (let i = 0; i < this.n; i++) max = Math.max(max, this.running[i]?.rsm.raft.raftStateBytes() ?? 0)
    return max
  }

  snapshotSize(): number {
    let max = 0
    for (let i = 0; i < this.n; i++) max = Math.max(max, this.running[i]?.status().snapshotBytes ?? 0)
    return max
  }

  // Recorded operations: every call goes into the history for the linearizability check.

  async get(clerk: Clerk, key: string): Promise<string> {
    return this.record(clerk, { op: "get", key }, () => clerk.client.get(key))
  }

  async put(clerk: Clerk, key: string, value: string): Promise<void> {
    await this.record(clerk, { op: "put", key, value }, () => clerk.client.put(key, value))
  }

  async append(clerk: Clerk, key: string, value: string): Promise<void> {
    await this.record(clerk, { op: "append", key, value }, () => clerk.client.append(key, value))
  }

  private async record<A>(clerk: Clerk, input: KvInput, run: () => Effect.Effect<A, unknown>): Promise<A> {
    const token = this.history.begin(clerk.id, input)
    const exit = await Effect.runPromiseExit(run())
    if (Exit.isSuccess(exit)) {
      this.history.end(token, typeof exit.value === "string" ? exit.value : undefined)
      this.ops++
      return exit.value
    }
    this.history.unknown(token)
    throw new Error(`${input.op} ${input.key} failed: ${String(exit.cause)}`)
  }

  checkLinearizable(): void {
    const start = performance.now()
    const history = this.history.history()
    const verdict = checkLinearizable(history)
    console.log(`linearizability: ${history.length} operations checked in ${(performance.now() - start).toFixed(0)} ms`)
    if (!verdict.ok) throw new Error(`history is not linearizable (key ${verdict.key}):\n${verdict.explanation}`)
  }

  async cleanup(): Promise<void> {
    this.running.fill(undefined)
    await this.processes.cleanup()
  }

  elapsedMs(): number {
    return Date.now() - this.startedAt
  }
}
