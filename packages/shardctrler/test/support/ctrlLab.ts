/** The shard-controller lab harness (shardctrler/config.go) in one seeded world's virtual time. */
import { expect } from "bun:test"
import type { NodeId } from "@kv/raft"
import type { SimNetwork } from "@kv/rpc"
import { SimProcesses, SimWorld } from "@kv/testkit"
import {
  type Config,
  type ControllerClientShape,
  type ControllerServerShape,
  makeControllerClient,
  makeControllerServer,
} from "../../src/index.ts"

export const N_SHARDS = 10

const address = (i: number) => `ctrl-${i}`

/** A clerk with Promise methods, as the lab's tests call them. */
export interface CtrlClerk {
  join(groups: Record<number, string[]>): Promise<void>
  leave(gids: number[]): Promise<void>
  move(shard: number, gid: number): Promise<void>
  query(num: number): Promise<Config>
}

const promised = (processes: SimProcesses, client: ControllerClientShape): CtrlClerk => ({
  join: (groups) => processes.run(client.join(Object.fromEntries(Object.entries(groups).map(([k, v]) => [k, v])))),
  leave: (gids) => processes.run(client.leave(gids)),
  move: (shard, gid) => processes.run(client.move(shard, gid)),
  query: (num) => processes.run(client.query(num)),
})

/** The controller lab in virtual time: run its tests inside `lab.world.drive`. */
export class CtrlLab {
  readonly world: SimWorld
  readonly network: SimNetwork
  readonly processes: SimProcesses
  private readonly servers: (ControllerServerShape | undefined)[]
  private readonly peers: Record<number, string> = {}
  private clerks = 0

  constructor(
    readonly n: number,
    readonly seed: number,
  ) {
    this.world = new SimWorld(seed)
    this.network = this.world.network
    this.processes = new SimProcesses(this.world)
    this.servers = new Array(n).fill(undefined)
    for (let i = 0; i < n; i++) this.peers[i + 1] = address(i)
  }

  /** Starts every server; call inside `world.drive`. */
  async init(): Promise<void> {
    for (let i = 0; i < this.n; i++) await this.restart(i)
  }

  sleep(ms: number): Promise<void> {
    return this.world.sleep(ms)
  }

  /** Starts (or restarts) server i from what its disk holds. */
  async restart(i: number): Promise<void> {
    this.servers[i] = await this.processes.start(
      address(i),
      makeControllerServer({ id: (i + 1) as NodeId, peers: this.peers, nShards: N_SHARDS, seed: this.seed + i }),
    )
  }

  /** Kills server i: only what it synced survives. */
  async crash(i: number): Promise<void> {
    this.servers[i] = undefined
    await this.processes.stop(address(i))
  }

  async makeClerk(): Promise<CtrlClerk> {
    const rpc = await this.processes.client(`ctrl-clerk-${this.clerks++}`)
    return promised(
      this.processes,
      await this.processes.run(makeControllerClient(rpc, { controllers: Object.values(this.peers) })),
    )
  }

  /** The replica that claims leadership in the highest term, if any. */
  leader(): number | undefined {
    let best: number | undefined
    let term = -1
    this.servers.forEach((s, i) => {
      const status = s?.rsm.raft.status()
      if (status?.role === "leader" && status.term > term) {
        best = i
        term = status.term
      }
    })
    return best
  }

  cleanup(): Promise<void> {
    return this.processes.cleanup()
  }
}

/** The lab's check(): exactly `groups` exist, every shard is on one of them, and the load is balanced. */
export const check = async (groups: number[], ck: CtrlClerk): Promise<Config> => {
  const c = await ck.query(-1)
  expect(
    Object.keys(c.groups)
      .map(Number)
      .sort((a, b) => a - b),
  ).toEqual([...groups].sort((a, b) => a - b))
  if (groups.length > 0) for (const gid of c.shards) expect(c.groups[String(gid)]).toBeDefined()
  const counts = new Map<number, number>(groups.map((g) => [g, 0]))
  for (const gid of c.shards) counts.set(gid, (counts.get(gid) ?? 0) + 1)
  if (groups.length > 0) {
    const loads = groups.map((g) => counts.get(g) ?? 0)
    expect(Math.max(...loads)).toBeLessThanOrEqual(Math.min(...loads) + 1)
  }
  return c
}

/** Shards that stayed on a pre-existing group stayed: no shard moved between groups present before and after. */
export const checkMinimal = (before: Config, after: Config, survivors: number[]): void => {
  for (let j = 0; j < before.shards.length; j++) {
    const gid = after.shards[j]!
    if (survivors.includes(gid)) expect(before.shards[j]).toBe(gid)
  }
}
