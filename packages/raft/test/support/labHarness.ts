/**
 * The lab's Raft test harness (config.go) over SimNetwork and memory storage: start, crash,
 * restart, disconnect and connect servers; check leaders; `one()` to agree on a command; an
 * applier per server that checks in-order apply and agreement across servers.
 */
import { RpcNode, SimNetwork, type Timers, Transport } from "@kv/rpc"
import { type Rng, Seed, VirtualClock, VirtualDriver, virtualTimers } from "@kv/sim"
import { Effect, Exit, Layer, Scope } from "effect"
import type { LogIndex, NodeId } from "../../src/core/index.ts"
import { type ApplyEvent, makeRaftNode, type RaftNodeShape } from "../../src/node/raftNode.ts"
import { isRaftReply, RAFT_CHANNEL } from "../../src/node/wire.ts"
import { type MemoryDisk, Storage } from "../../src/storage/index.ts"

export const RAFT_ELECTION_TIMEOUT_MS = 1_000

const encoder = new TextEncoder()
const decoder = new TextDecoder()
export const encodeCommand = (cmd: unknown): Uint8Array => encoder.encode(JSON.stringify(cmd))
const decodeCommand = (data: Uint8Array): unknown => JSON.parse(decoder.decode(data))

export interface LabOptions {
  readonly seed: number
  readonly unreliable?: boolean
  /** Lab 3D: the tester snapshots every SNAPSHOT_INTERVAL entries. */
  readonly snapshot?: boolean
}

interface Running {
  readonly scope: Scope.Closeable
  readonly node: RaftNodeShape
}

export const SNAPSHOT_INTERVAL = 10

export class RaftLab {
  readonly clock = new VirtualClock()
  readonly driver: VirtualDriver
  private readonly timers: Timers
  private readonly random: Rng
  readonly network: SimNetwork
  readonly disks = new Map<string, MemoryDisk>()
  private readonly running: (Running | undefined)[]
  /** Per server: index → command as applied (the lab's `logs`). */
  readonly logs: Map<number, unknown>[]
  private readonly lastApplied: number[]
  private readonly connected: boolean[]
  private applyError: string | undefined
  private readonly peers: Record<number, string>
  private readonly startedAt = 0
  maxIndex = 0
  private retiredRequests = 0

  constructor(
    readonly n: number,
    readonly options: LabOptions,
  ) {
    const seed = new Seed(options.seed)
    const clock = this.clock
    this.driver = new VirtualDriver(clock, seed.stream("effect"))
    this.random = seed.stream("harness")
    const rpcRandom = seed.stream("rpc")
    this.timers = virtualTimers(clock, rpcRandom)
    this.network = new SimNetwork({ seed: options.seed, schedule: (delayMs, fn) => clock.setTimer(delayMs, fn) })
    // Long reordering delays replies only; Raft's travel one-way, so say which those are.
    this.network.classifyReplies(RAFT_CHANNEL, isRaftReply)
    this.network.setUnreliable(options.unreliable ?? false)
    this.running = new Array(n).fill(undefined)
    this.logs = Array.from({ length: n }, () => new Map())
    this.lastApplied = new Array(n).fill(0)
    this.connected = new Array(n).fill(false)
    this.peers = {}
    for (let i = 0; i < n; i++) this.peers[i + 1] = address(i)
  }

  /** Starts and connects every server; call inside `driver.drive`. */
  async init(): Promise<void> {
    for (let i = 0; i < this.n; i++) await this.restart(i)
    for (let i = 0; i < this.n; i++) this.connect(i)
  }

  /** Starts (or restarts) server i from whatever its storage holds; it starts disconnected, as in the lab. */
  async restart(i: number): Promise<void> {
    await this.crash(i)
    this.logs[i] = new Map()
    this.lastApplied[i] = 0
    const scope = await this.driver.promise(Scope.make())
    const layer = RpcNode.layerWith({ timers: this.timers }).pipe(
      Layer.provide(Transport.layerSim(this.network, address(i), { timers: this.timers })),
      Layer.merge(Storage.layerMemory(this.disks)),
    )
    const config = {
      id: (i + 1) as NodeId,
      peers: this.peers,
      seed: this.options.seed + i * 7919,
      apply: (event: ApplyEvent) => this.applier(i, event),
    }
    const program = Effect.gen(function* () {
      const context = yield* Layer.buildWithScope(layer, scope)
      return yield* makeRaftNode(config).pipe(Effect.provideContext(context), Scope.provide(scope))
    })
    const exit = await this.driver.exit(program)
    if (Exit.isFailure(exit)) {
      await this.driver.promise(Scope.close(scope, Exit.void))
      throw new Error(`server ${i} failed to start: ${String(exit.cause)}`)
    }
    this.running[i] = { scope, node: exit.value }
  }

  /** Kills server i: its memory is gone; only what it synced to its disk survives. */
  async crash(i: number): Promise<void> {
    const r = this.running[i]
    this.running[i] = undefined
    if (r !== undefined) this.retiredRequests += r.node.counters().requestsSent
    if (r !== undefined) await this.driver.promise(Scope.close(r.scope, Exit.void))
  }

  connect(i: number): void {
    this.connected[i] = true
    this.network.connect(address(i))
  }

  disconnect(i: number): void {
    this.connected[i] = false
    this.network.disconnect(address(i))
  }

  isConnected(i: number): boolean {
    return this.connected[i] ?? false
  }

  node(i: number): RaftNodeShape | undefined {
    return this.running[i]?.node
  }

  async cleanup(): Promise<void> {
    for (let i = 0; i < this.n; i++) await this.crash(i)
    if (this.applyError !== undefined) throw new Error(this.applyError)
  }

  /** Fails the test if any applier saw out-of-order or disagreeing commits. */
  checkApplyErrors(): void {
    if (this.applyError !== undefined) throw new Error(this.applyError)
  }

  private applier(i: number, event: ApplyEvent): void {
    if (event.type === "snapshot") {
      const values = decodeCommand(event.snapshot.data) as unknown[]
      const log = new Map<number, unknown>()
      values.forEach((v, k) => {
        if (v !== null) log.set(k + 1, v)
      })
      if (event.snapshot.index < (this.lastApplied[i] ?? 0)) {
        this.applyError ??= `server ${i} installed snapshot ${event.snapshot.index} below applied ${this.lastApplied[i]}`
      }
      for (const [k, v] of log) this.checkAgreement(i, k, v)
      this.logs[i] = log
      this.lastApplied[i] = event.snapshot.index
      return
    }
    for (const entry of event.entries) {
      const expected = (this.lastApplied[i] ?? 0) + 1
      if (entry.index !== expected) {
        this.applyError ??= `server ${i} apply out of order: expected ${expected}, got ${entry.index}`
        return
      }
      this.lastApplied[i] = entry.index
      if (entry.data.length === 0) continue
      const value = decodeCommand(entry.data)
      this.checkAgreement(i, entry.index, value)
      this.logs[i]!.set(entry.index, value)
      if (entry.index > this.maxIndex) this.maxIndex = entry.index
      if (this.options.snapshot && (entry.index + 1) % SNAPSHOT_INTERVAL === 0) this.takeSnapshot(i, entry.index)
    }
  }

  private takeSnapshot(i: number, index: number): void {
    const node = this.running[i]?.node
    if (node === undefined) return
    const values: unknown[] = []
    for (let k = 1; k <= index; k++) values.push(this.logs[i]!.get(k) ?? null)
    Effect.runSync(node.snapshot(index as LogIndex, encodeCommand(values)))
  }

  private checkAgreement(i: number, index: number, value: unknown): void {
    const text = JSON.stringify(value)
    for (let j = 0; j < this.n; j++) {
      const other = this.logs[j]!.get(index)
      if (other !== undefined && JSON.stringify(other) !== text) {
        this.applyError ??= `commit index=${index} server=${i} ${text} != server=${j} ${JSON.stringify(other)}`
      }
    }
  }

  /** The lab's Start(): propose on server i. */
  startCommand(i: number, cmd: unknown): { index: number; term: number; isLeader: boolean } {
    const node = this.running[i]?.node
    if (node === undefined) return { index: -1, term: -1, isLeader: false }
    const result = node.proposeUnsafe(encodeCommand(cmd))
    if ("index" in result) return { index: result.index, term: result.term, isLeader: true }
    return { index: -1, term: node.status().term, isLeader: false }
  }

  getState(i: number): { term: number; isLeader: boolean } {
    const s = this.running[i]?.node.status()
    return { term: s?.term ?? 0, isLeader: s?.role === "leader" }
  }

  /** checkOneLeader: up to 10 rounds of 450–550 ms; exactly one leader in the newest term. */
  async checkOneLeader(): Promise<number> {
    for (let iter = 0; iter < 10; iter++) {
      await this.sleep(450 + this.random.nextInt(100))
      const leaders = new Map<number, number[]>()
      for (let i = 0; i < this.n; i++) {
        if (!this.connected[i] || this.running[i] === undefined) continue
        const { term, isLeader } = this.getState(i)
        if (isLeader) leaders.set(term, [...(leaders.get(term) ?? []), i])
      }
      let lastTerm = -1
      for (const [term, ids] of leaders) {
        if (ids.length > 1) throw new Error(`term ${term} has ${ids.length} (>1) leaders`)
        if (term > lastTerm) lastTerm = term
      }
      if (leaders.size > 0) return leaders.get(lastTerm)![0]!
    }
    throw new Error("expected one leader, got none")
  }

  /** checkTerms: every connected server agrees on the term. */
  checkTerms(): number {
    let term = -1
    for (let i = 0; i < this.n; i++) {
      if (!this.connected[i] || this.running[i] === undefined) continue
      const t = this.getState(i).term
      if (term === -1) term = t
      else if (term !== t) throw new Error("servers disagree on term")
    }
    return term
  }

  checkNoLeader(): void {
    for (let i = 0; i < this.n; i++) {
      if (this.connected[i] && this.getState(i).isLeader) {
        throw new Error(`expected no leader among connected servers, but ${i} claims to be leader`)
      }
    }
  }

  /** How many servers think the entry at `index` is committed, and its command. */
  nCommitted(index: number): { count: number; cmd: unknown } {
    this.checkApplyErrors()
    let count = 0
    let cmd: unknown
    for (let i = 0; i < this.n; i++) {
      const v = this.logs[i]!.get(index)
      if (v === undefined) continue
      if (count > 0 && JSON.stringify(v) !== JSON.stringify(cmd)) {
        throw new Error(`committed values do not match: index ${index}`)
      }
      count++
      cmd = v
    }
    return { count, cmd }
  }

  /** wait(): for `n` servers to commit `index`, backing off up to 1 s; undefined if the term moved on. */
  async wait(index: number, n: number, startTerm: number): Promise<unknown> {
    let to = 10
    for (let iters = 0; iters < 30; iters++) {
      if (this.nCommitted(index).count >= n) break
      await this.sleep(to)
      if (to < 1_000) to *= 2
      if (startTerm > -1) {
        for (let i = 0; i < this.n; i++) {
          if (this.running[i] !== undefined && this.getState(i).term > startTerm) return undefined
        }
      }
    }
    const { count, cmd } = this.nCommitted(index)
    if (count < n) throw new Error(`only ${count} decided for index ${index}; wanted ${n}`)
    return cmd
  }

  /**
   * one(): submit `cmd` to whichever server is leader, retrying for 10 s; waits 2 s per attempt for
   * `expectedServers` to commit it. Returns the index.
   */
  async one(cmd: unknown, expectedServers: number, retry: boolean): Promise<number> {
    const t0 = this.clock.now()
    let starts = 0
    const want = JSON.stringify(cmd)
    while (this.clock.now() - t0 < 10_000) {
      let index = -1
      for (let si = 0; si < this.n; si++) {
        starts = (starts + 1) % this.n
        if (!this.connected[starts] || this.running[starts] === undefined) continue
        const r = this.startCommand(starts, cmd)
        if (r.isLeader) {
          index = r.index
          break
        }
      }
      if (index !== -1) {
        const t1 = this.clock.now()
        while (this.clock.now() - t1 < 2_000) {
          const { count, cmd: got } = this.nCommitted(index)
          if (count > 0 && count >= expectedServers && JSON.stringify(got) === want) return index
          await this.sleep(20)
        }
        if (!retry) throw new Error(`one(${want}) failed to reach agreement`)
      } else {
        await this.sleep(50)
      }
    }
    throw new Error(`one(${want}) failed to reach agreement in 10 s\n${this.describe()}`)
  }

  /** Every server's Raft status, for failure messages. */
  describe(): string {
    return Array.from({ length: this.n }, (_, i) => {
      const node = this.running[i]?.node
      if (node === undefined) return `  server ${i}: down`
      const s = node.status()
      return `  server ${i}${this.connected[i] ? "" : " (disconnected)"}: term ${s.term} ${s.role} leader ${s.leader} commit ${s.commitIndex} applied ${s.appliedIndex} last ${s.lastIndex} snapshot ${s.snapshotIndex}`
    }).join("\n")
  }

  /**
   * Raft requests sent by all servers (responses excluded): the lab counts RPC calls, each of which
   * carries its reply. Counts survive restarts of a server.
   */
  rpcTotal(): number {
    let total = this.retiredRequests
    for (let i = 0; i < this.n; i++) total += this.running[i]?.node.counters().requestsSent ?? 0
    return total
  }

  bytesTotal(): number {
    let total = 0
    for (let i = 0; i < this.n; i++) total += this.network.countsOf(address(i)).bytesSent
    return total
  }

  /** Persisted Raft state of server i (hard state + log after the snapshot), in bytes. */
  raftStateSize(i: number): number {
    return this.running[i]?.node.raftStateBytes() ?? 0
  }

  /** Waits `ms` of virtual time. */
  sleep(ms: number): Promise<void> {
    return this.driver.sleep(ms)
  }

  elapsedMs(): number {
    return this.clock.now() - this.startedAt
  }
}

export const address = (i: number): string => `raft-${i}`
