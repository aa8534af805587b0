import { RpcNode, type RpcNodeShape, SimNetwork, type Timers, Transport } from "@kv/rpc"
import { Seed, VirtualClock, VirtualDriver, virtualTimers } from "@kv/sim"
import { Effect, Exit, Layer, Scope } from "effect"
import type { Message, NodeId } from "../../src/core/index.ts"
import { type ApplyEvent, makeRaftNode, type RaftNodeShape } from "../../src/node/raftNode.ts"
import { decodeMessages, encodeMessages, isRaftReply, RAFT_CHANNEL } from "../../src/node/wire.ts"
import { MemoryDisk, Storage, type WriteHint } from "../../src/storage/index.ts"
import { promiseNotDurable } from "./durability.ts"

export const address = (id: number): string => `member-${id}`

export interface Running {
  readonly scope: Scope.Closeable
  readonly node: RaftNodeShape
  readonly rpc: RpcNodeShape
  readonly applied: number[]
}

export interface NodeGroupOptions {
  /** Each node's memory disk takes this long to make a write durable (`MemoryStorageOptions`). */
  readonly flushDelay?: Effect.Effect<void>
  /** Per node, instead of `flushDelay`: one slow disk among fast ones. */
  readonly flushDelayOf?: (id: number) => Effect.Effect<void>
  /** Sees every command a node applies, with its index (all incarnations). */
  readonly onApply?: (id: number, index: number, data: Uint8Array) => void
  /** Replaces the default (print and exit the process) when a node cannot go on. */
  readonly onFatal?: (id: number, error: unknown) => void
  /** Every node's `preferredLeader`: the member with this id's address. */
  readonly preferredLeader?: number
  /** Sees every durable write a node starts (`RaftStorage.write`): its entries and the node's hint. */
  readonly onWrite?: (id: number, entries: number, hint: WriteHint | undefined) => void
}

/**
 * Raft nodes (shell and core) over one SimNetwork in virtual time, for the node-level tests: each
 * node gets an RpcNode at `member-<id>` and memory storage that survives its stops.
 */
export class NodeGroup {
  readonly clock = new VirtualClock()
  readonly driver: VirtualDriver
  readonly network: SimNetwork
  readonly disks = new Map<string, MemoryDisk>()
  private readonly timers: Timers
  readonly nodes = new Map<number, Running>()
  /** Raft messages a node sent before its disk held what they promise (see `promiseNotDurable`). */
  readonly sentBeforeDurable: string[] = []
  /** How many Raft messages of each type the nodes sent. */
  readonly sentTypes = new Map<string, number>()
  private readonly scopes: Scope.Closeable[] = []

  constructor(
    readonly seed: number,
    private readonly options: NodeGroupOptions = {},
  ) {
    const s = new Seed(seed)
    const clock = this.clock
    this.driver = new VirtualDriver(clock, s.stream("effect"))
    this.timers = virtualTimers(clock, s.stream("rpc"))
    this.network = new SimNetwork({ seed, schedule: (delayMs, fn) => clock.setTimer(delayMs, fn) })
    this.network.classifyReplies(RAFT_CHANNEL, isRaftReply)
  }

  private async rpcAt(
    at: string,
    flushDelay: Effect.Effect<void> | undefined,
  ): Promise<{ scope: Scope.Closeable; rpc: RpcNodeShape; storage: Storage["Service"] }> {
    const scope = await this.driver.promise(Scope.make())
    this.scopes.push(scope)
    const layer = RpcNode.layerWith({ timers: this.timers }).pipe(
      Layer.provide(Transport.layerSim(this.network, at, { timers: this.timers })),
      Layer.merge(Storage.layerMemory(this.disks, flushDelay === undefined ? {} : { flushDelay })),
    )
    const services = Effect.gen(function* () {
      return { rpc: yield* RpcNode, storage: yield* Storage }
    })
    const context = await this.driver.promise(Layer.buildWithScope(layer, scope))
    return { scope, ...(await this.driver.promise(services.pipe(Effect.provideContext(context)))) }
  }

  /** Starts node `id` at `at` (its own address unless it takes over another's, as a replaced machine does). */
  async start(id: number, peers: Record<number, string>, join = false, at = address(id)): Promise<void> {
    const flushDelay = this.options.flushDelayOf?.(id) ?? this.options.flushDelay
    const { scope, rpc, storage } = await this.rpcAt(at, flushDelay)
    const onWrite = this.options.onWrite
    const applied: number[] = []
    const node = await this.driver.promise(
      makeRaftNode({
        id: id as NodeId,
        peers,
        join,
        seed: this.seed + id * 7919,
        preferredLeader: this.options.preferredLeader === undefined ? undefined : address(this.options.preferredLeader),
        ...(this.options.onFatal === undefined
          ? {}
          : { onFatal: (error: unknown) => this.options.onFatal?.(id, error) }),
        apply: (event: ApplyEvent) => {
          if (event.type !== "entries") return
          for (const e of event.entries) {
            if (e.data.length === 0) continue
            applied.push(e.index)
            this.options.onApply?.(id, e.index, e.data)
          }
        },
      }).pipe(
        Effect.provideService(RpcNode, this.checkingDurability(id, rpc)),
        Effect.provideService(Storage, onWrite === undefined ? storage : watchingWrites(storage, id, onWrite)),
        Scope.provide(scope),
      ),
    )
    this.network.connect(at)
    this.nodes.set(id, { scope, node, rpc, applied })
  }

  /** `rpc`, with every Raft message node `id` sends checked against what its disk holds. */
  private checkingDurability(id: number, rpc: RpcNodeShape): RpcNodeShape {
    const checked: RpcNodeShape = Object.create(rpc)
    Object.assign(checked, {
      sendOneWay: (to: string, channel: string, payload: unknown) => {
        const disk = this.disks.get(`node-${id}`) ?? new MemoryDisk()
        if (channel === RAFT_CHANNEL) {
          for (const m of decodeMessages(payload) ?? []) {
            this.sentTypes.set(m.type, (this.sentTypes.get(m.type) ?? 0) + 1)
            const broken = promiseNotDurable(m, disk)
            if (broken !== undefined) this.sentBeforeDurable.push(`${m.type} ${m.from}->${m.to} t${m.term}: ${broken}`)
          }
        }
        return rpc.sendOneWay(to, channel, payload)
      },
    })
    return checked
  }

  /** Stops node `id`: its memory is gone, its disk stays. */
  async stop(id: number): Promise<void> {
    const r = this.nodes.get(id)
    this.nodes.delete(id)
    if (r !== undefined) await this.driver.promise(Scope.close(r.scope, Exit.void))
  }

  /** An RpcNode at `at` that is no member: it sends whatever Raft datagrams the test writes. */
  async forger(at: string): Promise<(to: number, messages: readonly Message[]) => void> {
    const { rpc } = await this.rpcAt(at, this.options.flushDelay)
    return (to, messages) => {
      rpc.sendOneWay(address(to), RAFT_CHANNEL, encodeMessages(messages))
    }
  }

  running(id: number): Running {
    const r = this.nodes.get(id)
    if (r === undefined) throw new Error(`node ${id} is not running`)
    return r
  }

  node(id: number): RaftNodeShape {
    return this.running(id).node
  }

  /** Polls `done` every 10 ms of virtual time, for at most `limitMs`. */
  async waitFor(what: string, done: () => boolean, limitMs = 10_000): Promise<void> {
    for (let waited = 0; !done(); waited += 10) {
      if (waited >= limitMs) throw new Error(`timed out after ${limitMs} ms of virtual time waiting for ${what}`)
      await this.driver.sleep(10)
    }
  }

  leader(among: readonly number[]): number | undefined {
    return among.find((id) => this.nodes.get(id)?.node.status().role === "leader")
  }

  /**
   * Proposes `text` until every node of `among` has applied it, and returns its index. A leader
   * deposed before its entry reached a majority may lose it (the next leader's log overwrites it):
   * then it is proposed again, to the new leader.
   */
  async commit(among: readonly number[], text: string): Promise<number> {
    const data = new TextEncoder().encode(text)
    for (let attempt = 1; ; attempt++) {
      let index = 0
      let term = 0
      await this.waitFor(`a leader among ${among} to take "${text}"`, () => {
        const id = this.leader(among)
        if (id === undefined) return false
        const r = this.node(id).proposeUnsafe(data)
        if (!("index" in r)) return false
        index = r.index
        term = this.node(id).status().term
        return true
      })
      let lost = false
      await this.waitFor(`entry ${index} applied on ${among}`, () => {
        if (among.every((id) => this.nodes.get(id)?.applied.includes(index))) return true
        // A leader's log grows only by its own proposals: one of a later term without the entry has lost it.
        const leader = this.leader(among)
        const status = leader === undefined ? undefined : this.node(leader).status()
        lost = status !== undefined && status.term > term && status.lastIndex < index
        return lost
      })
      if (!lost) return index
      if (attempt === 5) throw new Error(`"${text}" was lost by ${attempt} leaders in a row`)
    }
  }

  run<A>(body: () => Promise<A>): Promise<A> {
    return this.driver.drive(body, { limitMs: 600_000 })
  }

  async close(): Promise<void> {
    await this.run(async () => {
      for (const scope of this.scopes.splice(0)) await this.driver.promise(Scope.close(scope, Exit.void))
      this.nodes.clear()
    })
  }
}

/** `storage`, telling `onWrite` of every durable write a node opened through it starts. */
const watchingWrites = (
  storage: Storage["Service"],
  id: number,
  onWrite: NonNullable<NodeGroupOptions["onWrite"]>,
): Storage["Service"] =>
  Storage.of({
    open: (name) =>
      Effect.map(storage.open(name), (inner) => ({
        ...inner,
        write: (hardState, entries, hint) => {
          onWrite(id, entries.length, hint)
          return inner.write(hardState, entries, hint)
        },
      })),
  })
