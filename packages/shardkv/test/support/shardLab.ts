/**
 * The lab's sharded-KV harness (shardkv/config.go) in virtual time: a controller of 3 replicas,
 * groups 100/101/102 of 3 replicas each with memory storage that survives crashes, join/leave
 * through an admin clerk, replica and group crash/restart, log-size checks, and clerks whose
 * operations can be recorded for the linearizability check. One SimWorld holds it all, so one
 * seed decides the run; tests are async bodies run by `lab.world.drive` (see labTest.ts).
 */
import { expect } from "bun:test"
import type { KvClientShape } from "@kv/kvraft"
import { type NodeId, openMemoryStorage } from "@kv/raft"
import type { SimNetwork } from "@kv/rpc"
import {
  type Config,
  type ControllerClientShape,
  makeControllerClient,
  makeControllerServer,
  shardOf,
} from "@kv/shardctrler"
import { checkLinearizable, HistoryRecorder, type KvInput, SimProcesses, SimWorld } from "@kv/testkit"
import { Effect, Exit } from "effect"
import { makeShardKvClient, makeShardKvServer, type ShardKvServerShape } from "../../src/index.ts"

export const N_SHARDS = 10
export const GIDS = [100, 101, 102] as const
/** Latency of every link, on top of the unreliable model's 0–27 ms. */
export const LINK_MAX_DELAY_MS = 5

export interface ShardLabOptions {
  readonly seed: number
  readonly unreliable?: boolean
  /** Lab maxraftstate: > 0 snapshots at that many bytes; -1 never snapshots (and none may exist). */
  readonly maxRaftStateBytes: number
  /** Replicas per group; 3 in the lab. */
  readonly n?: number
}

export interface Clerk {
  readonly id: number
  readonly client: KvClientShape
}

interface Group {
  readonly gid: number
  readonly peers: Record<number, string>
  readonly servers: (ShardKvServerShape | undefined)[]
}

const serverAddress = (gid: number, i: number) => `g${gid}-${i}`
export const storageName = (gid: number, i: number) => `shardkv-${gid}-${i}`

/** One key per shard: shardOf is a hash, so the lab's "key i is in shard i" is found by search. */
export const keysCoveringShards = (nShards = N_SHARDS): string[] => {
  const keys = new Array<string>(nShards)
  let found = 0
  for (let i = 0; found < nShards; i++) {
    const key = String(i)
    const shard = shardOf(key, nShards)
    if (keys[shard] === undefined) {
      keys[shard] = key
      found++
    }
  }
  return keys
}

/** `n` keys, the first N_SHARDS of them one per shard (as the lab's keys "0".."9" are). */
export const labKeys = (n: number): string[] => {
  const keys = keysCoveringShards().slice(0, n)
  const taken = new Set(keys)
  for (let i = 0; keys.length < n; i++) if (!taken.has(String(i))) keys.push(String(i))
  return keys
}

export const randstring = (n: number, random: () => number): string => {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
  let out = ""
  for (let i = 0; i < n; i++) out += alphabet[Math.floor(random() * alphabet.length)]
  return out
}

export class ShardLab {
  readonly world: SimWorld
  readonly network: SimNetwork
  readonly processes: SimProcesses
  readonly history = new HistoryRecorder()
  readonly n: number
  readonly groups: Group[]
  readonly ctrlPeers: Record<number, string> = {}
  private admin: ControllerClientShape | undefined
  private nextClerk = 0
  private nextController = 0

  constructor(readonly options: ShardLabOptions) {
    this.world = new SimWorld(options.seed)
    this.network = this.world.network
    // Every datagram takes 0–5 ms: without latency a whole exchange (a clerk's retries, a shard's
    // migration) would happen at one instant of virtual time, and "within 1 s" would mean nothing.
    this.network.setMaxDelay(LINK_MAX_DELAY_MS)
    this.network.setUnreliable(options.unreliable ?? false)
    this.processes = new SimProcesses(this.world)
    this.n = options.n ?? 3
    for (let i = 0; i < 3; i++) this.ctrlPeers[i + 1] = `ctrl-${i}`
    this.groups = GIDS.map((gid) => {
      const peers: Record<number, string> = {}
      for (let i = 0; i < this.n; i++) peers[i + 1] = serverAddress(gid, i)
      return { gid, peers, servers: new Array(this.n).fill(undefined) }
    })
  }

  /** Starts the controller and every group (none joined yet); call inside `world.drive`. */
  async init(): Promise<void> {
    await this.startControllers("ctrl", this.ctrlPeers)
    this.admin = await this.controllerClient(Object.values(this.ctrlPeers))
    for (let gi = 0; gi < this.groups.length; gi++) await this.restartGroup(gi)
  }

  /** Virtual milliseconds since the world began. */
  now(): number {
    return this.world.now()
  }

  /** Resolves after `ms` of virtual time. */
  sleep(ms: number): Promise<void> {
    return this.world.sleep(ms)
  }

  /** `effect` run in the world (an admin call, a raw RPC), settling in virtual time. */
  run<A, E>(effect: Effect.Effect<A, E>): Promise<A> {
    return this.processes.run(effect)
  }

  /** A controller of 3 replicas at `${prefix}-i` (the lab has one; TestRejection5A adds a second). */
  async startControllers(prefix: string, peers: Record<number, string>): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await this.processes.start(
        `${prefix}-${i}`,
        makeControllerServer({
          id: (i + 1) as NodeId,
          peers,
          nShards: N_SHARDS,
          storageName: `${prefix}-${i}`,
          seed: this.options.seed + 104_729 * (i + 1),
        }),
      )
    }
  }

  /** A second, separate controller (TestRejection5A), with its admin client. */
  async makeController(prefix: string): Promise<{ addresses: string[]; admin: ControllerClientShape }> {
    const peers: Record<number, string> = {}
    for (let i = 0; i < 3; i++) peers[i + 1] = `${prefix}-${i}`
    await this.startControllers(prefix, peers)
    const addresses = Object.values(peers)
    return { addresses, admin: await this.controllerClient(addresses) }
  }

  private async controllerClient(controllers: string[]): Promise<ControllerClientShape> {
    const rpc = await this.processes.client(`admin-${this.nextController++}`)
    return this.run(makeControllerClient(rpc, { controllers, deadlineMs: 60_000 }))
  }

  gid(gi: number): number {
    return this.groups[gi]!.gid
  }

  servers(gi: number): string[] {
    return Object.values(this.groups[gi]!.peers)
  }

  /**
   * Starts replica i of group gi, or restarts it from what its disk kept. `started` sees the server
   * the moment it is built, before anything else of the world runs.
   */
  async restart(gi: number, i: number, started?: (server: ShardKvServerShape) => void): Promise<void> {
    const group = this.groups[gi]!
    group.servers[i] = undefined
    group.servers[i] = await this.processes.start(
      serverAddress(group.gid, i),
      makeShardKvServer({
        gid: group.gid,
        id: (i + 1) as NodeId,
        peers: group.peers,
        controllers: Object.values(this.ctrlPeers),
        nShards: N_SHARDS,
        maxRaftStateBytes: this.options.maxRaftStateBytes > 0 ? this.options.maxRaftStateBytes : undefined,
        storageName: storageName(group.gid, i),
        seed: this.options.seed + 7_919 * group.gid + 31 * i,
      }).pipe(Effect.tap((server) => Effect.sync(() => started?.(server)))),
    )
  }

  /** Kills replica i of group gi: its memory is gone; only what it synced survives. */
  async crash(gi: number, i: number): Promise<void> {
    const group = this.groups[gi]!
    group.servers[i] = undefined
    await this.processes.stop(serverAddress(group.gid, i))
  }

  async restartGroup(gi: number): Promise<void> {
    for (let i = 0; i < this.n; i++) await this.restart(gi, i)
  }

  async crashGroup(gi: number): Promise<void> {
    for (let i = 0; i < this.n; i++) await this.crash(gi, i)
  }

  server(gi: number, i: number): ShardKvServerShape | undefined {
    return this.groups[gi]!.servers[i]
  }

  /** The replica of group gi that claims leadership in the highest term, if any. */
  leader(gi: number): number | undefined {
    let best: number | undefined
    let term = -1
    this.groups[gi]!.servers.forEach((s, i) => {
      const status = s?.rsm.raft.status()
      if (status?.role === "leader" && status.term > term) {
        best = i
        term = status.term
      }
    })
    return best
  }

  /** The controller's Join of groups `gis` (the lab's join and joinm). */
  async join(...gis: number[]): Promise<void> {
    const groups: Record<string, string[]> = {}
    for (const gi of gis) groups[String(this.gid(gi))] = this.servers(gi)
    await this.run(this.admin!.join(groups))
  }

  /** The controller's Leave of groups `gis` (the lab's leave and leavem). */
  async leave(...gis: number[]): Promise<void> {
    await this.run(this.admin!.leave(gis.map((gi) => this.gid(gi))))
  }

  /** Gives `shard` to group gi (the controller's Move). */
  async move(shard: number, gi: number): Promise<void> {
    await this.run(this.admin!.move(shard, this.gid(gi)))
  }

  async query(num = -1): Promise<Config> {
    return this.run(this.admin!.query(num))
  }

  /** A clerk of the sharded service; `controllers` defaults to the lab's controller. */
  async makeClient(controllers: readonly string[] = Object.values(this.ctrlPeers)): Promise<Clerk> {
    const id = this.nextClerk++
    const rpc = await this.processes.client(`clerk-${id}`)
    const client = await this.run(makeShardKvClient(rpc, { controllers, deadlineMs: 60_000 }))
    return { id, client }
  }

  /** Persisted Raft state and snapshot of replica i of group gi, running or not. */
  persisted(gi: number, i: number): { raftStateBytes: number; snapshotBytes: number } {
    const group = this.groups[gi]!
    const running = group.servers[i]
    if (running !== undefined) {
      const s = running.rsm.raft.status()
      return { raftStateBytes: s.raftStateBytes, snapshotBytes: s.snapshotBytes }
    }
    const disk = this.processes.disks.get(storageName(group.gid, i))
    if (disk === undefined) return { raftStateBytes: 0, snapshotBytes: 0 }
    // A stopped server's disk: opening it is what a restart would do first, and changes nothing.
    const storage = openMemoryStorage(disk)
    try {
      return { raftStateBytes: storage.raftStateBytes(), snapshotBytes: storage.snapshotBytes() }
    } finally {
      storage.close()
    }
  }

  /** The lab's checklogs(): Raft state within 8 × maxraftstate; with -1, no snapshot at all. */
  checklogs(): void {
    const max = this.options.maxRaftStateBytes
    for (let gi = 0; gi < this.groups.length; gi++) {
      for (let i = 0; i < this.n; i++) {
        const { raftStateBytes, snapshotBytes } = this.persisted(gi, i)
        const who = `group ${this.gid(gi)} replica ${i}`
        if (max > 0) {
          if (raftStateBytes > 8 * max) throw new Error(`${who}: Raft state ${raftStateBytes} B > 8 × ${max} B`)
        } else {
          if (snapshotBytes !== 0)
            throw new Error(`${who}: maxraftstate is -1 but a ${snapshotBytes} B snapshot exists`)
        }
      }
    }
  }

  /** Raft state plus snapshot, summed over every replica of every group (TestChallenge1Delete). */
  totalPersistedBytes(): number {
    let total = 0
    for (let gi = 0; gi < this.groups.length; gi++) {
      for (let i = 0; i < this.n; i++) {
        const { raftStateBytes, snapshotBytes } = this.persisted(gi, i)
        total += raftStateBytes + snapshotBytes
      }
    }
    return total
  }

  // Operations, optionally recorded for the linearizability check.

  async get(clerk: Clerk, key: string): Promise<string> {
    return this.record(clerk, { op: "get", key }, () => clerk.client.get(key))
  }

  async put(clerk: Clerk, key: string, value: string): Promise<void> {
    await this.record(clerk, { op: "put", key, value }, () => clerk.client.put(key, value))
  }

  async append(clerk: Clerk, key: string, value: string): Promise<void> {
    await this.record(clerk, { op: "append", key, value }, () => clerk.client.append(key, value))
  }

  /** The lab's check(): Get returns the expected value. */
  async check(clerk: Clerk, key: string, value: string): Promise<void> {
    const v = await this.get(clerk, key)
    if (v !== value) throw new Error(`Get(${key}): expected:\n${value}\nreceived:\n${v}`)
  }

  private async record<A>(clerk: Clerk, input: KvInput, body: () => Effect.Effect<A, unknown>): Promise<A> {
    const token = this.history.begin(clerk.id, input)
    const exit = await this.world.driver.exit(body())
    if (Exit.isSuccess(exit)) {
      this.history.end(token, typeof exit.value === "string" ? exit.value : undefined)
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
    expect(verdict.ok ? "linearizable" : `not linearizable (key ${verdict.key}):\n${verdict.explanation}`).toBe(
      "linearizable",
    )
  }

  /**
   * Stops every server and client. Operations still retrying (at a group that is down) are left
   * behind: nothing steps the world's clock once the test body has ended.
   */
  async cleanup(): Promise<void> {
    for (const group of this.groups) group.servers.fill(undefined)
    await this.processes.cleanup()
  }
}
