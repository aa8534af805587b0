/**
 * The lab's sharded-KV harness (shardkv/config.go) over SimNetwork: a controller of 3 replicas,
 * groups 100/101/102 of 3 replicas each with memory storage that survives crashes, join/leave
 * through an admin clerk, group and server shutdown/restart, log-size checks, and clerks whose
 * operations can be recorded for the linearizability check.
 */
import { expect } from "bun:test"
import type { KvClientShape } from "@kv/kvraft"
import { type NodeId, openMemoryStorage } from "@kv/raft"
import { SimNetwork } from "@kv/rpc"
import {
  type Config,
  type ControllerClientShape,
  makeControllerClient,
  makeControllerServer,
  shardOf,
} from "@kv/shardctrler"
import { checkLinearizable, HistoryRecorder, type KvInput, SimProcesses } from "@kv/testkit"
import { Effect, Exit } from "effect"
import { makeShardKvClient, makeShardKvServer, type ShardKvServerShape } from "../../src/index.ts"

export const N_SHARDS = 10
export const GIDS = [100, 101, 102] as const

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
const storageName = (gid: number, i: number) => `shardkv-${gid}-${i}`

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
  readonly network: SimNetwork
  readonly processes: SimProcesses
  readonly history = new HistoryRecorder()
  readonly n: number
  readonly groups: Group[]
  readonly ctrlPeers: Record<number, string> = {}
  private admin: ControllerClientShape | undefined
  private nextClerk = 0
  /** Aborted by cleanup: interrupts operations still retrying (e.g. at a group that is down). */
  private readonly stop = new AbortController()
  private nextController = 0

  private constructor(readonly options: ShardLabOptions) {
    this.network = new SimNetwork({ seed: options.seed })
    this.network.setUnreliable(options.unreliable ?? false)
    this.processes = new SimProcesses(this.network)
    this.n = options.n ?? 3
    for (let i = 0; i < 3; i++) this.ctrlPeers[i + 1] = `ctrl-${i}`
    this.groups = GIDS.map((gid) => {
      const peers: Record<number, string> = {}
      for (let i = 0; i < this.n; i++) peers[i + 1] = serverAddress(gid, i)
      return { gid, peers, servers: new Array(this.n).fill(undefined) }
    })
  }

  static async make(options: ShardLabOptions): Promise<ShardLab> {
    const lab = new ShardLab(options)
    await lab.startControllers("ctrl", lab.ctrlPeers)
    lab.admin = await lab.controllerClient(Object.values(lab.ctrlPeers))
    for (let gi = 0; gi < lab.groups.length; gi++) await lab.startGroup(gi)
    return lab
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
    return Effect.runPromise(makeControllerClient(rpc, { controllers, deadlineMs: 60_000 }))
  }

  gid(gi: number): number {
    return this.groups[gi]!.gid
  }

  servers(gi: number): string[] {
    return Object.values(this.groups[gi]!.peers)
  }

  async startServer(gi: number, i: number): Promise<void> {
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
      }),
    )
  }

  /** Stops replica i of group gi abruptly; only what it synced survives. */
  async shutdownServer(gi: number, i: number): Promise<void> {
    const group = this.groups[gi]!
    group.servers[i] = undefined
    await this.processes.stop(serverAddress(group.gid, i))
  }

  async startGroup(gi: number): Promise<void> {
    for (let i = 0; i < this.n; i++) await this.startServer(gi, i)
  }

  async shutdownGroup(gi: number): Promise<void> {
    for (let i = 0; i < this.n; i++) await this.shutdownServer(gi, i)
  }

  server(gi: number, i: number): ShardKvServerShape | undefined {
    return this.groups[gi]!.servers[i]
  }

  async join(gi: number): Promise<void> {
    await this.joinm([gi])
  }

  async joinm(gis: readonly number[]): Promise<void> {
    const groups: Record<string, string[]> = {}
    for (const gi of gis) groups[String(this.gid(gi))] = this.servers(gi)
    await Effect.runPromise(this.admin!.join(groups))
  }

  async leave(gi: number): Promise<void> {
    await this.leavem([gi])
  }

  async leavem(gis: readonly number[]): Promise<void> {
    await Effect.runPromise(this.admin!.leave(gis.map((gi) => this.gid(gi))))
  }

  /** Gives `shard` to group gi (the controller's Move). */
  async move(shard: number, gi: number): Promise<void> {
    await Effect.runPromise(this.admin!.move(shard, this.gid(gi)))
  }

  async query(num = -1): Promise<Config> {
    return Effect.runPromise(this.admin!.query(num))
  }

  /** A clerk of the sharded service; `controllers` defaults to the lab's controller. */
  async makeClient(controllers: readonly string[] = Object.values(this.ctrlPeers)): Promise<Clerk> {
    const id = this.nextClerk++
    const rpc = await this.processes.client(`clerk-${id}`)
    const client = await Effect.runPromise(makeShardKvClient(rpc, { controllers, deadlineMs: 60_000 }))
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
    return this.run(clerk, { op: "get", key }, () => clerk.client.get(key))
  }

  async put(clerk: Clerk, key: string, value: string): Promise<void> {
    await this.run(clerk, { op: "put", key, value }, () => clerk.client.put(key, value))
  }

  async append(clerk: Clerk, key: string, value: string): Promise<void> {
    await this.run(clerk, { op: "append", key, value }, () => clerk.client.append(key, value))
  }

  /** The lab's check(): Get returns the expected value. */
  async check(clerk: Clerk, key: string, value: string): Promise<void> {
    const v = await this.get(clerk, key)
    if (v !== value) throw new Error(`Get(${key}): expected:\n${value}\nreceived:\n${v}`)
  }

  private async run<A>(clerk: Clerk, input: KvInput, body: () => Effect.Effect<A, unknown>): Promise<A> {
    const token = this.history.begin(clerk.id, input)
    const exit = await Effect.runPromiseExit(body(), { signal: this.stop.signal })
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

  async cleanup(): Promise<void> {
    this.stop.abort()
    for (const group of this.groups) group.servers.fill(undefined)
    await this.processes.cleanup()
  }
}
