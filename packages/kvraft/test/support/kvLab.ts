/**
 * The lab's kvraft harness (kvraft/config.go) in one seeded world's virtual time: servers with
 * memory storage that survives their crashes, clerks that each reach a chosen set of servers,
 * partitions, crash/restart, and a recorder of every client operation for the linearizability
 * check. Network, timers, elections, clerks and the test's own choices all come from one seed, so
 * a run replays exactly; run a scenario with `lab.run(body)`.
 */
import type { NodeId } from "@kv/raft"
import type { SimNetwork } from "@kv/rpc"
import { type Rng, TraceDigest } from "@kv/sim"
import { checkLinearizable, HistoryRecorder, type KvInput, SimProcesses, SimWorld } from "@kv/testkit"
import { type Effect, Exit } from "effect"
import { type KvClientShape, type KvLimits, type KvServerShape, makeKvClient, makeKvServer } from "../../src/index.ts"

export const ELECTION_TIMEOUT_MS = 1_000

/** Latency of every link, on top of the unreliable model's 0–27 ms. */
export const LINK_MAX_DELAY_MS = 5

/** The lab's per-test bound (checkTimeout), in virtual time. */
export const LAB_VIRTUAL_LIMIT_MS = 120_000

export interface KvLabOptions {
  readonly seed: number
  readonly unreliable?: boolean
  /** Lab maxraftstate: > 0 snapshots at that many bytes; -1 never snapshots. */
  readonly maxRaftStateBytes?: number
  /** Session limits, for tests of session expiry. */
  readonly limits?: Partial<KvLimits>
}

export interface Clerk {
  readonly id: number
  readonly address: string
  readonly client: KvClientShape
}

/** What a finished run did, for comparing two runs of one seed. */
export interface KvRunSummary {
  readonly ops: number
  readonly virtualMs: number
  /** Every operation's call and return (virtual time, clerk, input, output) folded into 16 hex digits. */
  readonly historyDigest: string
}

const serverAddress = (i: number) => `kv-${i}`

export class KvLab {
  readonly world: SimWorld
  readonly network: SimNetwork
  readonly processes: SimProcesses
  readonly history = new HistoryRecorder()
  /** The harness's own choices (leader checks); scenarios draw from `world.stream`. */
  private readonly random: Rng
  private readonly digest = new TraceDigest()
  private readonly running: (KvServerShape | undefined)[]
  private readonly peers: Record<number, string> = {}
  /** Which servers each server or clerk address can reach; absent = all. */
  private readonly reach = new Map<string, Set<string>>()
  private nextClerk = 0
  ops = 0

  constructor(
    readonly n: number,
    readonly options: KvLabOptions,
  ) {
    this.world = new SimWorld(options.seed)
    this.network = this.world.network
    // Every datagram takes 0–5 ms: in virtual time a network without latency would let a clerk's
    // loop run forever at one instant (no timer ever comes due), and "fast enough" would mean nothing.
    this.network.setMaxDelay(LINK_MAX_DELAY_MS)
    this.network.setUnreliable(options.unreliable ?? false)
    this.processes = new SimProcesses(this.world)
    this.random = this.world.stream("harness")
    this.network.setLinkFilter((from, to) => this.canReach(from, to) && this.canReach(to, from))
    this.running = new Array(n).fill(undefined)
    for (let i = 0; i < n; i++) this.peers[i + 1] = serverAddress(i)
  }

  /**
   * Runs `body` in virtual time on a fresh group of `n` servers, stopping everything afterwards
   * whatever happens; fails with `VirtualDeadlock` past the lab's 120 s of virtual time.
   */
  async run(body: (lab: KvLab) => Promise<void>, limitMs = LAB_VIRTUAL_LIMIT_MS): Promise<KvRunSummary> {
    await this.world.drive(
      async () => {
        try {
          for (let i = 0; i < this.n; i++) await this.restart(i)
          await body(this)
        } finally {
          await this.cleanup()
        }
      },
      { limitMs },
    )
    return { ops: this.ops, virtualMs: this.now(), historyDigest: this.digest.value }
  }

  private canReach(from: string, to: string): boolean {
    const allowed = this.reach.get(from)
    return allowed === undefined || !to.startsWith("kv-") || allowed.has(to)
  }

  /** Starts server i from what its disk holds (an empty disk the first time); a running one is crashed first. */
  async restart(i: number): Promise<void> {
    this.running[i] = undefined
    this.running[i] = await this.processes.start(
      serverAddress(i),
      makeKvServer({
        id: (i + 1) as NodeId,
        peers: this.peers,
        maxRaftStateBytes: this.options.maxRaftStateBytes,
        ...(this.options.limits === undefined ? {} : { limits: this.options.limits }),
        seed: this.options.seed + 7919 * i,
      }),
    )
  }

  /** Stops server i abruptly; only what it synced survives. */
  async crash(i: number): Promise<void> {
    this.running[i] = undefined
    await this.processes.stop(serverAddress(i))
  }

  server(i: number): KvServerShape | undefined {
    return this.running[i]
  }

  /** Waits `ms` of virtual time. */
  sleep(ms: number): Promise<void> {
    return this.world.sleep(ms)
  }

  /** Virtual time since the run began. */
  now(): number {
    return this.world.now()
  }

  /** A clerk that knows every server but can only reach those in `to` (default all). */
  async makeClerk(to?: readonly number[]): Promise<Clerk> {
    const id = this.nextClerk++
    const address = `clerk-${id}`
    const rpc = await this.processes.client(address)
    const client = await this.processes.run(
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

  /** The leader among running servers, if one claims it (the highest term wins). */
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

  /**
   * checkOneLeader: up to 10 rounds of 450–550 ms; fails if a term has two leaders among running
   * servers or no round finds one; returns the leader of the newest term.
   */
  async checkOneLeader(): Promise<number> {
    for (let round = 0; round < 10; round++) {
      await this.sleep(450 + this.random.nextInt(100))
      const leaders = new Map<number, number[]>()
      for (let i = 0; i < this.n; i++) {
        const s = this.running[i]?.status()
        if (s?.role === "leader") leaders.set(s.term, [...(leaders.get(s.term) ?? []), i])
      }
      let newest = -1
      for (const [term, ids] of leaders) {
        if (ids.length > 1) throw new Error(`term ${term} has ${ids.length} (>1) leaders: ${ids.join(", ")}`)
        newest = Math.max(newest, term)
      }
      if (newest >= 0) return leaders.get(newest)![0]!
    }
    throw new Error("expected one leader, got none")
  }

  /** The lab's make_partition: a majority p1 without the leader, and p2 holding the leader. */
  async makePartition(): Promise<{ p1: number[]; p2: number[] }> {
    const l = await this.checkOneLeader()
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
    this.digest.record("call", this.now(), clerk.id, input.op, input.key, "value" in input ? input.value : "")
    const exit = await this.world.driver.exit(run())
    if (Exit.isSuccess(exit)) {
      const output = typeof exit.value === "string" ? exit.value : undefined
      this.history.end(token, output)
      this.digest.record("return", this.now(), clerk.id, output ?? "")
      this.ops++
      return exit.value
    }
    this.history.unknown(token)
    this.digest.record("unknown", this.now(), clerk.id)
    throw new Error(`${input.op} ${input.key} failed: ${String(exit.cause)}`)
  }

  checkLinearizable(): void {
    const history = this.history.history()
    const verdict = checkLinearizable(history)
    console.log(`linearizability: ${history.length} operations checked`)
    if (!verdict.ok) throw new Error(`history is not linearizable (key ${verdict.key}):\n${verdict.explanation}`)
  }

  async cleanup(): Promise<void> {
    this.running.fill(undefined)
    await this.processes.cleanup()
  }
}
