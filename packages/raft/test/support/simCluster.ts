/**
 * A small deterministic driver for unit tests: a few cores with in-memory "disks", a network the
 * test controls (drop, cut links), and helpers to run Readies the way the shell does
 * (persist → send → apply → advance).
 */
import {
  type Append,
  type AppendResp,
  createRaft,
  type Entry,
  type HardState,
  type LogIndex,
  type Membership,
  type Message,
  type NodeId,
  type RaftConfig,
  type RaftCore,
  type ReadState,
  type Ready,
  type RestoredState,
  type Snapshot,
  type Term,
} from "../../src/core/index.ts"

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b)

export const baseConfig = (id: NodeId, peers: readonly NodeId[], overrides: Partial<RaftConfig> = {}): RaftConfig => ({
  id,
  peers,
  electionTicks: 10,
  heartbeatTicks: 1,
  seed: 1,
  maxInflightMessages: 256,
  maxAppendBytes: 1 << 20,
  snapshotChunkBytes: 1 << 20,
  preVote: false,
  checkQuorum: false,
  ...overrides,
})

export const emptyState = (): RestoredState => ({
  hardState: { term: 0, vote: 0, commit: 0 },
  snapshot: undefined,
  entries: [],
})

/** Durable state of one node, as a storage would hold it after each Ready. */
export class Disk {
  hardState: HardState = { term: 0, vote: 0, commit: 0 }
  snapshot: Snapshot | undefined = undefined
  entries: Entry[] = []
  /** The configuration entries among `entries`, ascending (kept by persist and saveSnapshot). */
  configs: Entry[] = []

  persist(rd: Ready): void {
    if (rd.snapshot !== undefined) this.saveSnapshot(rd.snapshot)
    if (rd.hardState !== undefined) this.hardState = rd.hardState
    const first = rd.entries[0]
    if (first !== undefined) {
      const keep = this.entries.findIndex((e) => e.index >= first.index)
      if (keep >= 0) this.entries.length = keep
      this.entries.push(...rd.entries)
      this.configs = this.configs.filter((e) => e.index < first.index)
      for (const e of rd.entries) if (e.config !== undefined) this.configs.push(e)
    }
  }

  saveSnapshot(s: Snapshot): void {
    if (this.snapshot !== undefined && this.snapshot.index >= s.index) return
    const at = this.entries.find((e) => e.index === s.index)
    this.entries = at !== undefined && at.term === s.term ? this.entries.filter((e) => e.index > s.index) : []
    const first = this.entries[0]?.index ?? Number.POSITIVE_INFINITY
    this.configs = this.configs.filter((e) => e.index >= first)
    this.snapshot = s
  }

  /** The latest configuration on this disk: its last configuration entry's, else its snapshot's. */
  latestConfig(): { readonly membership: Membership | undefined; readonly index: number } {
    const last = this.configs[this.configs.length - 1]
    return last === undefined
      ? { membership: this.snapshot?.membership, index: 0 }
      : { membership: last.config, index: last.index }
  }

  restored(): RestoredState {
    return { hardState: this.hardState, snapshot: this.snapshot, entries: [...this.entries] }
  }
}

export interface SimNode {
  readonly id: NodeId
  core: RaftCore
  readonly disk: Disk
  /** Data of every applied entry (no-ops skipped) by index, and installed snapshots. */
  readonly applied: Map<number, string>
  readonly readStates: ReadState[]
  installedSnapshots: Snapshot[]
}

export class Cluster {
  readonly nodes = new Map<NodeId, SimNode>()
  /** Messages sent and not yet delivered. */
  inflight: Message[] = []
  /** Links that drop everything: "a->b". */
  private readonly cut = new Set<string>()
  /** Every message ever sent, for economy assertions. */
  sentCount = 0

  constructor(
    readonly ids: readonly NodeId[],
    readonly overrides: (id: NodeId) => Partial<RaftConfig> = () => ({}),
    restored?: (id: NodeId) => RestoredState,
  ) {
    for (const id of ids) {
      const disk = new Disk()
      const state = restored?.(id)
      if (state !== undefined) {
        disk.hardState = state.hardState
        disk.snapshot = state.snapshot
        disk.entries = [...state.entries]
        disk.configs = disk.entries.filter((e) => e.config !== undefined)
      }
      this.nodes.set(id, {
        id,
        core: createRaft(baseConfig(id, ids, { seed: id, ...overrides(id) }), disk.restored()),
        disk,
        applied: new Map(),
        readStates: [],
        installedSnapshots: [],
      })
    }
  }

  node(id: NodeId): SimNode {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  core(id: NodeId): RaftCore {
    return this.node(id).core
  }

  isolate(id: NodeId): void {
    for (const other of this.ids) {
      if (other === id) continue
      this.cut.add(`${id}->${other}`)
      this.cut.add(`${other}->${id}`)
    }
  }

  cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}->${b}`)
    this.cut.add(`${b}->${a}`)
  }

  heal(): void {
    this.cut.clear()
  }

  /** Restart a node from its disk (everything not persisted is lost). */
  restart(id: NodeId, overrides: Partial<RaftConfig> = {}): void {
    const n = this.node(id)
    n.core = createRaft(
      baseConfig(id, this.ids, { seed: id + 1000, ...this.overrides(id), ...overrides }),
      n.disk.restored(),
    )
    this.inflight = this.inflight.filter((m) => m.to !== id && m.from !== id)
  }

  /** Runs every pending Ready of one node as the shell would. */
  processReady(id: NodeId): Ready[] {
    const n = this.node(id)
    const out: Ready[] = []
    while (n.core.hasReady()) {
      const rd = n.core.ready()
      out.push(rd)
      for (const m of rd.messages) this.send(m)
      n.disk.persist(rd)
      for (const m of rd.messagesAfterPersist) this.send(m)
      if (rd.snapshot !== undefined) n.installedSnapshots.push(rd.snapshot)
      for (const e of rd.committedEntries) if (e.data.length > 0) n.applied.set(e.index, dec(e.data))
      n.readStates.push(...rd.readStates)
      n.core.advance(rd)
    }
    return out
  }

  send(m: Message): void {
    this.sentCount++
    if (this.cut.has(`${m.from}->${m.to}`)) return
    this.inflight.push(m)
  }

  /** Delivers what is in flight now (not what that produces). */
  deliverOnce(filter: (m: Message) => boolean = () => true): number {
    const batch = this.inflight
    this.inflight = []
    let delivered = 0
    for (const m of batch) {
      if (!filter(m)) continue
      this.nodes.get(m.to)?.core.step(m)
      delivered++
    }
    return delivered
  }

  /** Process Readies and deliver messages until nothing moves (bounded). */
  stabilize(filter: (m: Message) => boolean = () => true, maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      let busy = false
      for (const id of this.ids) if (this.processReady(id).length > 0) busy = true
      if (this.deliverOnce(filter) > 0) busy = true
      if (!busy) return
    }
    throw new Error("cluster did not stabilize")
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.core(id).tick()
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) for (const id of this.ids) this.core(id).tick()
  }

  /** Makes `id` campaign (as if its election timer fired) and runs the cluster to quiescence. */
  elect(id: NodeId): void {
    const core = this.core(id)
    for (let attempt = 0; attempt < 50 && core.role !== "leader"; attempt++) {
      for (let t = 0; t < 100 && core.role === "follower"; t++) core.tick()
      this.stabilize()
    }
    if (core.role !== "leader") throw new Error(`node ${id} did not become leader`)
  }

  leaders(): NodeId[] {
    return this.ids.filter((id) => this.core(id).role === "leader")
  }
}

/** Every message of a Ready: those it lets leave at once, then those that wait for its fsync. */
export const sent = (rd: Ready): readonly Message[] => [...rd.messages, ...rd.messagesAfterPersist]

/** Runs one Ready by hand: persist it to `disk` and advance. Returns it for assertions. */
export const takeReady = (core: RaftCore, disk?: Disk): Ready => {
  const rd = core.ready()
  disk?.persist(rd)
  core.advance(rd)
  return rd
}

export const messagesOfType = <T extends Message["type"]>(
  msgs: readonly Message[],
  type: T,
): Extract<Message, { type: T }>[] => msgs.filter((m): m is Extract<Message, { type: T }> => m.type === type)

export const newCore = (
  id: NodeId,
  peers: readonly NodeId[],
  overrides: Partial<RaftConfig> = {},
  restored: RestoredState = emptyState(),
): RaftCore => createRaft(baseConfig(id, peers, overrides), restored)

/** Ticks until `done()` holds; returns how many ticks that took. */
export const tickUntil = (core: RaftCore, done: () => boolean, max = 1000): number => {
  let ticks = 0
  while (!done()) {
    if (ticks++ >= max) throw new Error("tickUntil: condition not reached")
    core.tick()
  }
  return ticks
}

/**
 * Makes a fresh core the leader of the next term: it campaigns (through a pre-vote if configured),
 * every peer grants, and the Readies are taken. Returns the Ready that announced leadership.
 */
export const makeLeader = (core: RaftCore, disk?: Disk): Ready => {
  tickUntil(core, () => core.role === "candidate" || core.role === "pre-candidate")
  const campaign = takeReady(core, disk)
  for (const m of sent(campaign)) {
    const type = m.type === "PreVote" ? "PreVoteResp" : "VoteResp"
    core.step({ type, from: m.to, to: m.from, term: m.term, reject: false })
    if (core.role === "leader") break
  }
  if (core.role !== "leader") {
    // Pre-vote won: the real campaign is in the next Ready.
    const votes = takeReady(core, disk)
    for (const m of sent(votes)) {
      if (m.type === "Vote") core.step({ type: "VoteResp", from: m.to, to: m.from, term: m.term, reject: false })
    }
  }
  if (core.role !== "leader") throw new Error("makeLeader: did not win")
  return takeReady(core, disk)
}

/** Acknowledges every Append in `msgs` as the follower would if it accepted it. */
export const ackAppends = (core: RaftCore, msgs: readonly Message[]): void => {
  for (const m of msgs) {
    if (m.type !== "Append") continue
    core.step(appendAck(m.to, m.prevIndex + m.entries.length, m.term, m.from))
  }
}

/** A follower's acceptance of everything through `index` (to node 1 unless `to` says otherwise). */
export const appendAck = (from: NodeId, index: LogIndex, term: Term = 1, to: NodeId = 1): AppendResp => ({
  type: "AppendResp",
  from,
  to,
  term,
  index,
  reject: false,
  conflictTerm: 0,
  conflictIndex: 0,
})

/** Leader 1's first Append to node 2 in term 1: `entries` from the log's start, with its commit. */
export const firstAppend = (entries: readonly Entry[], commit: LogIndex = 0): Append => ({
  type: "Append",
  from: 1,
  to: 2,
  term: 1,
  prevIndex: 0,
  prevTerm: 0,
  entries,
  commit,
})
