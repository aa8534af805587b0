/**
 * Proves that a member cut off while the group added a node, which then became leader, catches up
 * once the partition heals: it learns the new leader's address from a member it knows (thesis §4.1:
 * a lagging member must hear a leader its log does not name yet). And that the rule which lets it
 * does not let a forger in: a datagram claiming a known member from another address, or an id no
 * member names, is still dropped, and moves neither term nor address.
 */
import { expect, test } from "bun:test"
import { RpcNode, type RpcNodeShape, SimNetwork, seedFromEnv, type Timers, Transport } from "@kv/rpc"
import { Seed, VirtualClock, VirtualDriver, virtualTimers } from "@kv/sim"
import { Effect, Exit, Layer, Scope } from "effect"
import type { Message, NodeId } from "../src/core/index.ts"
import { type ApplyEvent, makeRaftNode, type RaftNodeShape } from "../src/node/raftNode.ts"
import { encodeMessages, isRaftReply, RAFT_CHANNEL } from "../src/node/wire.ts"
import { type MemoryDisk, Storage } from "../src/storage/index.ts"

const FILE = "packages/raft/test/node-lagging-member.test.ts"
const address = (id: number): string => `member-${id}`

interface Running {
  readonly scope: Scope.Closeable
  readonly node: RaftNodeShape
  readonly rpc: RpcNodeShape
  readonly applied: number[]
}

class Group {
  readonly clock = new VirtualClock()
  readonly driver: VirtualDriver
  readonly network: SimNetwork
  readonly disks = new Map<string, MemoryDisk>()
  private readonly timers: Timers
  readonly nodes = new Map<number, Running>()
  private readonly scopes: Scope.Closeable[] = []

  constructor(readonly seed: number) {
    const s = new Seed(seed)
    const clock = this.clock
    this.driver = new VirtualDriver(clock, s.stream("effect"))
    this.timers = virtualTimers(clock, s.stream("rpc"))
    this.network = new SimNetwork({ seed, schedule: (delayMs, fn) => clock.setTimer(delayMs, fn) })
    this.network.classifyReplies(RAFT_CHANNEL, isRaftReply)
  }

  private async rpcAt(at: string): Promise<{ scope: Scope.Closeable; rpc: RpcNodeShape; storage: Storage["Service"] }> {
    const scope = await this.driver.promise(Scope.make())
    this.scopes.push(scope)
    const layer = RpcNode.layerWith({ timers: this.timers }).pipe(
      Layer.provide(Transport.layerSim(this.network, at, { timers: this.timers })),
      Layer.merge(Storage.layerMemory(this.disks)),
    )
    const services = Effect.gen(function* () {
      return { rpc: yield* RpcNode, storage: yield* Storage }
    })
    const context = await this.driver.promise(Layer.buildWithScope(layer, scope))
    return { scope, ...(await this.driver.promise(services.pipe(Effect.provideContext(context)))) }
  }

  async start(id: number, peers: Record<number, string>, join = false): Promise<void> {
    const { scope, rpc, storage } = await this.rpcAt(address(id))
    const applied: number[] = []
    const node = await this.driver.promise(
      makeRaftNode({
        id: id as NodeId,
        peers,
        join,
        seed: this.seed + id * 7919,
        apply: (event: ApplyEvent) => {
          if (event.type === "entries") for (const e of event.entries) if (e.data.length > 0) applied.push(e.index)
        },
      }).pipe(Effect.provideService(RpcNode, rpc), Effect.provideService(Storage, storage), Scope.provide(scope)),
    )
    this.nodes.set(id, { scope, node, rpc, applied })
  }

  /** An RpcNode at `at` that is no member: it sends whatever Raft datagrams the test writes. */
  async forger(at: string): Promise<(to: number, messages: readonly Message[]) => void> {
    const { rpc } = await this.rpcAt(at)
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

  async commit(among: readonly number[], text: string): Promise<number> {
    let index = 0
    await this.waitFor(`a leader among ${among} to take "${text}"`, () => {
      const id = this.leader(among)
      if (id === undefined) return false
      const r = this.node(id).proposeUnsafe(new TextEncoder().encode(text))
      if (!("index" in r)) return false
      index = r.index
      return true
    })
    await this.waitFor(`entry ${index} applied on ${among}`, () =>
      among.every((id) => this.nodes.get(id)?.applied.includes(index)),
    )
    return index
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

test("a member cut off while the group added its next leader catches up after healing; forgers stay unheard", async () => {
  const seed = seedFromEnv()
  const g = new Group(seed)
  const peers = { 1: address(1), 2: address(2), 3: address(3) }
  try {
    await g.run(async () => {
      for (const id of [1, 2, 3]) await g.start(id, peers)
      // Node 4 joins knowing only where the group is; no one will tell the lagging node where 4 lives.
      await g.start(4, { ...peers, 4: address(4) }, true)
      await g.commit([1, 2, 3], "before")

      // A follower is cut off for the whole change; the other two and node 4 go on.
      const first = g.leader([1, 2, 3]) as number
      const lagging = [1, 2, 3].find((id) => id !== first) as number
      const others = [1, 2, 3].filter((id) => id !== lagging)
      g.network.disconnect(address(lagging))
      await g.driver.promise(g.node(first).addLearner(4, address(4)))
      await g.driver.promise(g.node(first).promote(4))
      await g.commit([...others, 4], "with 4 a voter")
      await g.driver.promise(g.node(first).transferLeadership(4))
      await g.waitFor("node 4 to lead", () => g.leader([...others, 4]) === 4)
      const last = await g.commit([...others, 4], "under 4")
      const addresses = () =>
        g
          .node(lagging)
          .status()
          .members.map((m) => [m.id, m.address])
      expect(addresses()).toEqual([
        [1, address(1)],
        [2, address(2)],
        [3, address(3)],
      ])

      // Healed: 4's heartbeats reach a node whose log names no address for 4.
      g.network.connect(address(lagging))
      await g.waitFor(`node ${lagging} to apply entry ${last} from leader 4`, () =>
        g.running(lagging).applied.includes(last),
      )
      expect(g.node(lagging).status()).toMatchObject({ leader: 4, role: "follower", member: "voter" })
      expect(addresses()).toEqual([
        [1, address(1)],
        [2, address(2)],
        [3, address(3)],
        [4, address(4)],
      ])
      await g.commit([1, 2, 3, 4], "all four")

      // Forgeries from an address no member has: one for a member the node knows, one for an id
      // no member names. Each claims a later term; heard, either would move the node's term.
      const forge = await g.forger("forger")
      const { term, commitIndex } = g.node(lagging).status()
      const drops = () => g.running(lagging).rpc.transport.stats.drops.wrongSender
      const before = drops()
      forge(lagging, [{ type: "Heartbeat", from: 1, to: lagging, term: term + 5, commit: commitIndex, context: 0 }])
      forge(lagging, [{ type: "Heartbeat", from: 9, to: lagging, term: term + 5, commit: commitIndex, context: 0 }])
      await g.waitFor("both forgeries dropped", () => drops() >= before + 2)
      // Long enough for the node to ask its members about id 9 (none names it) and for 4 to lead on.
      await g.driver.sleep(2_000)
      forge(lagging, [{ type: "Heartbeat", from: 9, to: lagging, term: term + 5, commit: commitIndex, context: 0 }])
      await g.waitFor("the repeated forgery dropped", () => drops() >= before + 3)
      expect(g.node(lagging).status()).toMatchObject({ term, leader: 4 })
      expect(addresses()).toEqual([
        [1, address(1)],
        [2, address(2)],
        [3, address(3)],
        [4, address(4)],
      ])
      await g.commit([1, 2, 3, 4], "after the forgeries")
    })
  } catch (error) {
    console.error(`failed; replay: KV_SEED=${seed} bun test ${FILE}`)
    throw error
  } finally {
    await g.close()
  }
}, 60_000)
