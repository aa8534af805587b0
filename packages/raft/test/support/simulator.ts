/**
 * Deterministic simulation of a Raft group (VOPR-style): one seed drives every choice — ticks,
 * message loss, duplication, delay and reordering, partitions, crashes that lose whatever was not
 * yet persisted, restarts from durable state, service snapshots, proposals, reads, transfers, and
 * membership churn (learners added and promoted, voters added and removed, the leader included;
 * learners that lose their disk and must be brought back).
 * Safety invariants are checked after every step; then faults heal and the group must converge.
 */
import {
  createRaft,
  describeMembership,
  type Entry,
  type Membership,
  type MembershipChange,
  type Message,
  mixSeed,
  type NodeId,
  type RaftConfig,
  type RaftCore,
  type ReadState,
  type Ready,
  Rng,
  type Role,
  roleOf,
  type Snapshot,
  sameMembership,
  votersMembership,
} from "../../src/core/index.ts"
import { promiseNotDurable } from "./durability.ts"
import { Disk } from "./simCluster.ts"

export interface SimOptions {
  /** Rounds (ticks) of the faulty phase. */
  readonly safetyRounds?: number
  /** Rounds allowed after healing for a leader to emerge and a proposal to commit everywhere. */
  readonly livenessRounds?: number
  /** Keep a human-readable trace (printed on failure). */
  readonly trace?: boolean
}

export interface Coverage {
  leadersElected: number
  preVoteCampaigns: number
  preVotesFailed: number
  elections: number
  transfersRequested: number
  transfersCompleted: number
  snapshotChunks: number
  snapshotsResumed: number
  snapshotsInstalled: number
  compactions: number
  crashes: number
  crashesLosingReady: number
  restarts: number
  partitions: number
  proposalsAccepted: number
  entriesCommitted: number
  readsRequested: number
  readsServed: number
  messagesSent: number
  /** Sent before the sender had persisted the Ready that made them. */
  messagesSentEarly: number
  /** Handed out by takeDuringFlush while the node's Ready waited for its write. */
  messagesSentDuringFlush: number
  entriesAppliedDuringFlush: number
  /** Applied (committed on a majority) before the applying node's own write of them was durable. */
  entriesAppliedBeforeDurable: number
  /** Crashes of a node whose state machine had applied entries its disk did not hold yet. */
  crashesLosingApplied: number
  readsServedDuringFlush: number
  messagesDropped: number
  messagesDuplicated: number
  rejectedAppends: number
  livenessRounds: number
  /** Membership changes the leader accepted, by kind, and those it refused. */
  learnersAdded: number
  votersAdded: number
  promotions: number
  removals: number
  leaderRemovals: number
  changesRefused: number
  /** Leaders that stepped down after their own removal committed. */
  removedLeadersSteppedDown: number
  /** Learners whose disk was lost in place: the leader must bring them back from what they hold. */
  learnersWiped: number
  /** Configuration entries that became committed. */
  configsCommitted: number
}

export const emptyCoverage = (): Coverage => ({
  leadersElected: 0,
  preVoteCampaigns: 0,
  preVotesFailed: 0,
  elections: 0,
  transfersRequested: 0,
  transfersCompleted: 0,
  snapshotChunks: 0,
  snapshotsResumed: 0,
  snapshotsInstalled: 0,
  compactions: 0,
  crashes: 0,
  crashesLosingReady: 0,
  restarts: 0,
  partitions: 0,
  proposalsAccepted: 0,
  entriesCommitted: 0,
  readsRequested: 0,
  readsServed: 0,
  messagesSent: 0,
  messagesSentEarly: 0,
  messagesSentDuringFlush: 0,
  entriesAppliedDuringFlush: 0,
  entriesAppliedBeforeDurable: 0,
  crashesLosingApplied: 0,
  readsServedDuringFlush: 0,
  messagesDropped: 0,
  messagesDuplicated: 0,
  rejectedAppends: 0,
  livenessRounds: 0,
  learnersAdded: 0,
  votersAdded: 0,
  promotions: 0,
  removals: 0,
  leaderRemovals: 0,
  changesRefused: 0,
  removedLeadersSteppedDown: 0,
  learnersWiped: 0,
  configsCommitted: 0,
})

export const addCoverage = (into: Coverage, from: Coverage): void => {
  for (const k of Object.keys(into) as (keyof Coverage)[]) into[k] += from[k]
}

export interface SimResult {
  readonly seed: number
  readonly digest: number
  readonly coverage: Coverage
  readonly description: string
}

export class InvariantViolation extends Error {
  constructor(
    readonly invariant: string,
    readonly trace: readonly string[],
  ) {
    super(invariant)
  }
}

interface Params {
  readonly n: number
  readonly preVote: boolean
  readonly checkQuorum: boolean
  readonly electionTicks: number
  readonly heartbeatTicks: number
  readonly maxInflight: number
  readonly maxAppendBytes: number
  readonly chunkBytes: number
  readonly chunksInflight: number
  lossRate: number
  dupRate: number
  maxDelay: number
  crashRate: number
  readonly restartRate: number
  partitionRate: number
  readonly healRate: number
  leaderFaultRate: number
  proposeRate: number
  readRate: number
  transferRate: number
  readonly compactRate: number
  /** Chance a node's Ready is left unpersisted until the next round (a crash then loses it). */
  pendingRate: number
  readonly skipTickRate: number
  /** Chance per round of a membership change at the leader. */
  readonly churnRate: number
  /** Ids beyond the bootstrap voters that churn may add. */
  readonly spares: number
}

interface ServiceState {
  applied: number
  hash: number
}

interface SimNode {
  readonly id: NodeId
  core: RaftCore | undefined
  disk: Disk
  /** Started to join an existing group (no bootstrap peers): a spare, or a replaced machine. */
  joined: boolean
  /** Not (yet) a machine of the world: a spare never added. Faults and healing leave it alone. */
  absent: boolean
  /** Its disk was lost in place while a learner: it is never promoted. */
  tainted: boolean
  /** Some configuration made it a voter: its disk must never be lost (its votes and acks counted). */
  everVoter: boolean
  /** A Ready taken from the core and not yet persisted. */
  pending: Ready | undefined
  /** Its `messages` already left (before the Ready was persisted). */
  sentEarly: boolean
  service: ServiceState
  incarnation: number
  lastCommit: number
  lastRole: Role
  lastTerm: number
  partition: number
  /** Its outstanding Ready waits for the next round. */
  parked: boolean
}

interface CommittedRecord {
  readonly term: number
  readonly dataId: number
  /** Lowest term in which some node was seen to know this entry committed. */
  commitTerm: number
}

interface ReadRequest {
  readonly node: NodeId
  readonly incarnation: number
  /** Highest index any node knew committed when the read was asked for. */
  readonly minIndex: number
}

const dataIdOf = (data: Uint8Array): number =>
  data.length === 0
    ? 0
    : ((data[0] ?? 0) | ((data[1] ?? 0) << 8) | ((data[2] ?? 0) << 16) | ((data[3] ?? 0) << 24)) >>> 0

/** A voter, or a member whose removal is not yet committed (it may hold the only copy of that entry). */
const mayCampaign = (core: RaftCore): boolean => {
  const s = core.status()
  return s.self === "voter" || (s.self === "removed" && s.membershipIndex > s.commit)
}

/** What an entry says: its command's id, or for a configuration entry a digest of the membership. */
const entryIdOf = (e: Entry): number => {
  if (e.config === undefined) return dataIdOf(e.data)
  let h = 0x9e3779b9
  for (const m of e.config.members) h = mix(mix(h, m.id), m.role === "voter" ? 1 : 2)
  return (h | 0x80000000) >>> 0
}

const mix = (h: number, v: number): number => {
  let x = (h ^ v) >>> 0
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d)
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b)
  return (x ^ (x >>> 16)) >>> 0
}

const TYPE_CODE: Record<Message["type"], number> = {
  PreVote: 1,
  PreVoteResp: 2,
  Vote: 3,
  VoteResp: 4,
  Append: 5,
  AppendResp: 6,
  Heartbeat: 7,
  HeartbeatResp: 8,
  Snap: 9,
  SnapResp: 10,
  TimeoutNow: 11,
}

const describeMessage = (m: Message): string => {
  const head = `${m.type} ${m.from}->${m.to} t${m.term}`
  switch (m.type) {
    case "Append":
      return `${head} prev=(${m.prevIndex},${m.prevTerm}) n=${m.entries.length} commit=${m.commit}`
    case "AppendResp":
      return `${head} index=${m.index}${m.reject ? ` reject hint=(${m.conflictTerm},${m.conflictIndex})` : ""}`
    case "Heartbeat":
      return `${head} commit=${m.commit} ctx=${m.context}`
    case "HeartbeatResp":
      return `${head} ctx=${m.context}`
    case "Snap":
      return `${head} snap=${m.snapshot.index} off=${m.offset}+${m.chunk.length}/${m.total}`
    case "SnapResp":
      return `${head} snap=${m.snapshot.index} off=${m.offset}`
    case "PreVote":
    case "Vote":
      return `${head} last=(${m.lastLogIndex},${m.lastLogTerm})`
    case "PreVoteResp":
    case "VoteResp":
      return `${head}${m.reject ? " reject" : " grant"}`
    default:
      return head
  }
}

/** The service's snapshot: applied index, state hash, and filler bytes derived from both. */
const encodeServiceSnapshot = (s: ServiceState, padLength: number): Uint8Array => {
  const out = new Uint8Array(8 + padLength)
  const view = new DataView(out.buffer)
  view.setUint32(0, s.applied, true)
  view.setUint32(4, s.hash, true)
  for (let k = 0; k < padLength; k++) out[8 + k] = (s.hash + k * 31 + s.applied) & 255
  return out
}

const decodeServiceSnapshot = (data: Uint8Array): ServiceState | string => {
  if (data.length < 8) return `snapshot data too short (${data.length} bytes)`
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const applied = view.getUint32(0, true)
  const hash = view.getUint32(4, true)
  for (let k = 8; k < data.length; k++) {
    if (data[k] !== ((hash + (k - 8) * 31 + applied) & 255)) return `snapshot data corrupt at byte ${k}`
  }
  return { applied, hash }
}

export class Simulation {
  private readonly rng: Rng
  private readonly p: Params
  private readonly nodes: SimNode[] = []
  private readonly ids: NodeId[]
  private now = 0
  private step = 0
  private due: Message[] = []
  private readonly future = new Map<number, Message[]>()
  private digest = 0
  readonly coverage = emptyCoverage()
  private readonly traceLines: string[] = []

  /** Election safety across all time: term → leader. */
  private readonly leaderOfTerm = new Map<number, NodeId>()
  /** Log matching: (index, term) → data id and the term before it. */
  private readonly entryRecords = new Map<number, number>()
  /** Every index known committed, with its term and data. */
  private readonly committed = new Map<number, CommittedRecord>()
  private maxCommitted = 0
  /** State-machine safety: service state hash after applying each index. */
  private readonly stateAt = new Map<number, number>()
  private readonly reads = new Map<number, ReadRequest>()
  private nextReadId = 1
  private nextDataId = 1
  /** Leader term in which a transfer to some node was requested: target → term. */
  private readonly transferTargets = new Map<NodeId, number>()
  private liveness = false
  /** Furthest chunk offset sent per (leader, follower, snapshot). */
  private readonly snapshotOffsets = new Map<string, number>()
  private readonly bootstrap: Membership

  constructor(
    readonly seed: number,
    private readonly opts: SimOptions = {},
  ) {
    this.rng = new Rng(seed)
    const r = this.rng
    const pick = <T>(xs: readonly T[]): T => xs[r.nextInt(xs.length)] as T
    this.p = {
      n: pick([3, 3, 5]),
      preVote: r.chance(0.7),
      checkQuorum: r.chance(0.7),
      electionTicks: pick([4, 5, 6, 8]),
      heartbeatTicks: pick([1, 1, 2]),
      maxInflight: pick([1, 2, 4, 64]),
      maxAppendBytes: pick([1, 1, 16, 64, 4096]),
      chunkBytes: pick([4, 8, 16, 64]),
      chunksInflight: pick([1, 2, 4]),
      lossRate: pick([0, 0.02, 0.1, 0.2]),
      dupRate: pick([0, 0.02, 0.1]),
      maxDelay: pick([0, 1, 2, 4]),
      crashRate: pick([0, 0.01, 0.03]),
      restartRate: pick([0.1, 0.3]),
      partitionRate: pick([0, 0.02, 0.05]),
      healRate: pick([0.05, 0.15]),
      leaderFaultRate: pick([0, 0.03, 0.06, 0.1]),
      proposeRate: pick([0.3, 0.8, 1.5]),
      readRate: pick([0, 0.1, 0.4]),
      transferRate: pick([0, 0.01, 0.03]),
      compactRate: pick([0, 0.05, 0.2]),
      pendingRate: pick([0, 0.03, 0.1]),
      skipTickRate: pick([0, 0.05, 0.2]),
      churnRate: pick([0, 0.03, 0.08]),
      spares: pick([2, 4]),
    }
    this.ids = Array.from({ length: this.p.n }, (_, k) => k + 1)
    this.bootstrap = votersMembership(this.ids)
    const spares = this.p.churnRate === 0 ? 0 : this.p.spares
    for (let id = 1; id <= this.p.n + spares; id++) {
      const spare = id > this.p.n
      const node: SimNode = {
        id,
        core: undefined,
        disk: new Disk(),
        joined: spare,
        absent: spare,
        tainted: false,
        everVoter: !spare,
        pending: undefined,
        sentEarly: false,
        service: { applied: 0, hash: 0 },
        incarnation: 0,
        lastCommit: 0,
        lastRole: "follower",
        lastTerm: 0,
        partition: 0,
        parked: false,
      }
      this.nodes.push(node)
      if (!spare) this.start(node)
    }
  }

  describe(): string {
    const p = this.p
    return (
      `n=${p.n} preVote=${p.preVote} checkQuorum=${p.checkQuorum} election=${p.electionTicks} ` +
      `heartbeat=${p.heartbeatTicks} inflight=${p.maxInflight} appendBytes=${p.maxAppendBytes} ` +
      `chunk=${p.chunkBytes}x${p.chunksInflight} loss=${p.lossRate} dup=${p.dupRate} delay=${p.maxDelay} ` +
      `crash=${p.crashRate} leaderFault=${p.leaderFaultRate} partition=${p.partitionRate} propose=${p.proposeRate} read=${p.readRate} ` +
      `transfer=${p.transferRate} compact=${p.compactRate} churn=${p.churnRate} spares=${p.churnRate === 0 ? 0 : p.spares}`
    )
  }

  run(): SimResult {
    const safetyRounds = this.opts.safetyRounds ?? 200
    const livenessRounds = this.opts.livenessRounds ?? 20 * this.p.electionTicks
    for (let r = 0; r < safetyRounds; r++) this.round()
    this.heal()
    let probe: { index: number; term: number; dataId: number } | undefined
    for (let r = 0; r < livenessRounds; r++) {
      this.round()
      this.coverage.livenessRounds++
      const leaders = this.nodes.filter((n) => n.core?.role === "leader")
      const leader = leaders.length === 1 ? leaders[0] : undefined
      if (leader?.core === undefined) continue
      if (probe === undefined || leader.core.term !== probe.term) {
        const dataId = this.nextDataId++
        const res = leader.core.propose(this.makeData(dataId))
        if ("notLeader" in res) continue
        probe = { index: res.index, term: res.term, dataId }
        this.trace(`liveness probe ${dataId} at ${leader.id} index ${res.index}`)
        continue
      }
      const rec = this.committed.get(probe.index)
      if (rec === undefined || rec.dataId !== probe.dataId) continue
      const probeIndex = probe.index
      // Every member of the leader's configuration (learners too) must hold it; non-members need not.
      const members = leader.core.membership
      const settled = this.nodes.every(
        (n) => roleOf(members, n.id) === undefined || (n.core !== undefined && n.service.applied >= probeIndex),
      )
      if (settled) {
        return { seed: this.seed, digest: this.digest, coverage: this.coverage, description: this.describe() }
      }
    }
    const states = this.nodes
      .map((n) => {
        const s = n.core?.status()
        return s === undefined
          ? `${n.id}:down`
          : `${n.id}:${s.role}@${s.term} ${s.self} commit=${s.commit} applied=${n.service.applied} last=${s.lastIndex} config=[${describeMembership(s.membership)}]@${s.membershipIndex}`
      })
      .join(", ")
    return this.fail(`liveness: no single leader committing on every node after healing (${states})`)
  }

  // ------------------------------------------------------------------ schedule

  private round(): void {
    this.now++
    const due = this.future.get(this.now)
    if (due !== undefined) {
      this.future.delete(this.now)
      for (const m of due) this.due.push(m)
    }
    if (!this.liveness) this.faults()
    this.clientOps()
    for (const n of this.nodes) {
      if (n.core === undefined || this.rng.chance(this.p.skipTickRate)) continue
      n.core.tick()
      this.afterStep(this.opts.trace ? `tick ${n.id}` : "")
      this.maybeActDuringFlush(n)
    }
    for (const n of this.nodes) n.parked = false
    this.drain()
    this.checkMembershipViews()
  }

  private drain(): void {
    for (let guard = 0; ; guard++) {
      if (guard > 100_000) this.fail("simulation: a round did not quiesce")
      if (this.due.length > 0) {
        const k = this.rng.nextInt(this.due.length)
        const m = this.due[k] as Message
        this.due[k] = this.due[this.due.length - 1] as Message
        this.due.pop()
        this.deliver(m)
        if (this.rng.chance(0.5)) {
          const n = this.nodes[m.to - 1]
          if (n !== undefined) this.process(n)
        }
        continue
      }
      let busy = false
      const start = this.rng.nextInt(this.nodes.length)
      for (let k = 0; k < this.nodes.length; k++) {
        const n = this.nodes[(start + k) % this.nodes.length] as SimNode
        if (this.process(n)) busy = true
      }
      if (!busy) return
    }
  }

  /**
   * Runs a node's Readies through persist → send → apply → advance. Sometimes a Ready is left
   * unpersisted until the next round ("parked"): the node keeps receiving messages meanwhile, and a
   * crash at the start of the next round loses it.
   */
  private process(n: SimNode): boolean {
    let worked = false
    for (;;) {
      if (n.core === undefined || n.parked) return worked
      if (n.pending !== undefined) {
        this.completeReady(n)
        worked = true
        continue
      }
      if (!n.core.hasReady()) return worked
      this.takeReady(n)
      worked = true
      if (this.rng.chance(this.p.pendingRate)) {
        n.parked = true
        return worked
      }
    }
  }

  private faults(): void {
    const p = this.p
    const r = this.rng
    for (const n of this.nodes) {
      if (n.core !== undefined) {
        if (r.chance(p.crashRate)) this.crash(n)
      } else if (!n.absent && r.chance(p.restartRate)) {
        this.start(n)
      }
    }
    if (r.chance(p.leaderFaultRate)) {
      // Leader changes with entries in flight are where commitment rules matter (Figure 8).
      const leader = this.nodes.find((n) => n.core?.role === "leader")
      if (leader !== undefined) {
        if (r.chance(0.5)) this.crash(leader)
        else {
          this.coverage.partitions++
          for (const n of this.nodes) n.partition = n === leader ? 1 : 0
          this.trace(`partition: isolate leader ${leader.id}`)
        }
      }
    }
    if (r.chance(p.partitionRate)) {
      this.coverage.partitions++
      if (r.chance(0.5)) {
        const isolated = r.nextInt(this.nodes.length) + 1
        for (const n of this.nodes) n.partition = n.id === isolated ? 1 : 0
        this.trace(`partition: isolate ${isolated}`)
      } else {
        for (const n of this.nodes) n.partition = r.nextInt(2)
        this.trace(`partition: ${this.nodes.map((n) => n.partition).join("")}`)
      }
    } else if (r.chance(p.healRate)) {
      for (const n of this.nodes) n.partition = 0
    }
  }

  private clientOps(): void {
    const r = this.rng
    const leader = this.nodes.find((n) => n.core?.role === "leader")
    const target = (): SimNode | undefined => {
      if (leader !== undefined && r.chance(0.8)) return leader
      const n = this.nodes[r.nextInt(this.nodes.length)]
      return n?.core === undefined ? undefined : n
    }
    if (!this.liveness) {
      let proposals = Math.floor(this.p.proposeRate) + (r.chance(this.p.proposeRate % 1) ? 1 : 0)
      while (proposals-- > 0) {
        const n = target()
        if (n?.core === undefined) continue
        const dataId = this.nextDataId++
        const res = n.core.propose(this.makeData(dataId))
        if (!("notLeader" in res)) {
          this.coverage.proposalsAccepted++
          this.trace(`propose ${dataId} at ${n.id} -> index ${res.index} term ${res.term}`)
        }
        this.afterStep(this.opts.trace ? `propose at ${n.id}` : "")
      }
      if (r.chance(this.p.readRate)) {
        const n = target()
        if (n?.core !== undefined) {
          const requestId = this.nextReadId++
          if (n.core.readIndex(requestId)) {
            this.coverage.readsRequested++
            this.reads.set(requestId, { node: n.id, incarnation: n.incarnation, minIndex: this.maxCommitted })
            this.trace(`read ${requestId} at ${n.id} (min ${this.maxCommitted})`)
          }
          this.afterStep(`readIndex at ${n.id}`)
        }
      }
      if (leader?.core !== undefined && r.chance(this.p.transferRate)) {
        const to = this.ids[r.nextInt(this.ids.length)] as NodeId
        if (to !== leader.id && leader.core.transferLeadership(to)) {
          this.coverage.transfersRequested++
          this.transferTargets.set(to, leader.core.term)
          this.trace(`transfer ${leader.id} -> ${to} in term ${leader.core.term}`)
        }
        this.afterStep(`transfer at ${leader.id}`)
      }
    }
    if (!this.liveness && r.chance(this.p.churnRate)) this.churn()
    if (r.chance(this.p.compactRate)) {
      const n = this.nodes[r.nextInt(this.nodes.length)] as SimNode
      const core = n.core
      // As the shell does: a snapshot waits until the entries it covers are on this node's disk
      // (they are applied once committed, perhaps before).
      const index = core === undefined ? 0 : Math.min(n.service.applied, core.durableIndex())
      if (core !== undefined && index > core.firstIndex() - 1 && index === n.service.applied) {
        const term = core.termAt(index)
        if (term === undefined) this.fail(`compact: node ${n.id} has no term for applied index ${index}`)
        const data = encodeServiceSnapshot(n.service, r.nextInt(80))
        // As the shell does: the service's snapshot, with the membership at its index, is durable
        // before the log is dropped.
        n.disk.saveSnapshot({ index, term, data, membership: core.membershipAt(index) })
        core.compact(index, data)
        this.coverage.compactions++
        this.trace(`compact ${n.id} at ${index}`)
        this.afterStep(`compact at ${n.id}`)
      }
    }
  }

  // ------------------------------------------------------------------ membership churn

  /**
   * One membership change at the leader: add a learner or a voter (a spare machine, started empty
   * to join), promote a learner, remove any member (the leader too), or lose the disk of a learner
   * that was never a voter (the leader must bring it back from what it holds).
   *
   * Ids are never reused: a removed member's id added again with an empty disk could vote, as the
   * voter that old configurations still name, for a stale candidate that only a lagging member's
   * ancient configuration lets win (found here: seed 5277 before ids became single-use). Only a
   * never-voting learner may lose its disk, because no configuration counts its vote or its acks.
   */
  private churn(): void {
    const leader = this.nodes.find((n) => n.core?.role === "leader")
    const core = leader?.core
    if (leader === undefined || core === undefined) return
    const r = this.rng
    const pick = <T>(xs: readonly T[]): T | undefined => xs[r.nextInt(xs.length)]
    const m = core.membership
    const outside = this.nodes.filter((n) => n.absent)
    const learners = this.nodes.filter((n) => roleOf(m, n.id) === "learner")
    const choice = r.nextInt(10)
    let change: MembershipChange | undefined
    let fresh: SimNode | undefined
    if (choice < 4) {
      fresh = pick(outside)
      if (fresh !== undefined) {
        const type = choice < 3 ? "add-learner" : "add-voter"
        change = { type, id: fresh.id, address: `sim:${fresh.id}` }
      }
    } else if (choice < 6) {
      const x = pick(learners.filter((n) => !n.tainted))
      if (x !== undefined) change = { type: "promote", id: x.id }
    } else if (choice < 9) {
      const x = pick(m.members)
      if (x !== undefined) change = { type: "remove", id: x.id }
    } else {
      const x = pick(learners.filter((n) => !n.everVoter))
      if (x !== undefined) this.wipeLearner(x)
      return
    }
    if (change === undefined) return
    const res = core.proposeMembership(change)
    if ("refused" in res) {
      this.coverage.changesRefused++
      this.trace(`membership ${change.type} ${change.id} at ${leader.id} refused: ${res.refused.reason}`)
      this.afterStep(`refused change at ${leader.id}`)
      return
    }
    const c = this.coverage
    if (change.type === "add-voter" || change.type === "promote")
      (this.nodes[change.id - 1] as SimNode).everVoter = true
    if (change.type === "add-learner") c.learnersAdded++
    else if (change.type === "add-voter") c.votersAdded++
    else if (change.type === "promote") c.promotions++
    else {
      c.removals++
      if (change.id === leader.id) c.leaderRemovals++
    }
    this.trace(
      `membership ${change.type} ${change.id} at ${leader.id} -> index ${res.index}: ${describeMembership(res.membership)}`,
    )
    // The new member's machine starts empty before anything reaches it.
    if (fresh !== undefined) this.startSpare(fresh)
    this.afterStep(`membership change at ${leader.id}`)
  }

  /** A spare machine starts, empty, to join the group. */
  private startSpare(n: SimNode): void {
    n.absent = false
    this.freshDisk(n)
  }

  private wipeLearner(n: SimNode): void {
    this.coverage.learnersWiped++
    n.tainted = true
    this.trace(`wipe learner ${n.id}`)
    this.freshDisk(n)
  }

  private freshDisk(n: SimNode): void {
    n.core = undefined
    n.pending = undefined
    n.parked = false
    n.disk = new Disk()
    n.joined = true
    // Messages of the old machine (or to it) die with it: a stale acknowledgement from a lost disk
    // would vouch for entries the new one does not hold.
    const keep = (m: Message) => m.to !== n.id && m.from !== n.id
    this.due = this.due.filter(keep)
    for (const [at, list] of this.future) this.future.set(at, list.filter(keep))
    this.start(n)
  }

  /**
   * Every member's view of the configuration is the one its log says (thesis §4.1): the latest
   * configuration entry on its disk, else its snapshot's membership, else its bootstrap peers.
   * Checked at the end of each round on nodes whose log is all durable. A leader holds at most one
   * uncommitted configuration entry.
   */
  private checkMembershipViews(): void {
    for (const n of this.nodes) {
      const core = n.core
      if (core === undefined || n.pending !== undefined || n.parked) continue
      const disk = n.disk
      const diskLast = disk.entries.at(-1)?.index ?? disk.snapshot?.index ?? 0
      if (core.lastIndex() !== diskLast || core.firstIndex() - 1 !== (disk.snapshot?.index ?? 0)) continue
      const expected = disk.latestConfig()
      const membership = expected.membership ?? (n.joined ? { members: [] } : this.bootstrap)
      const status = core.status()
      if (!sameMembership(core.membership, membership) || status.membershipIndex !== expected.index) {
        this.fail(
          `membership view: node ${n.id} uses [${describeMembership(core.membership)}]@${status.membershipIndex}, ` +
            `its log says [${describeMembership(membership)}]@${expected.index}`,
        )
      }
      if (core.role === "leader") {
        const uncommitted = disk.configs.filter((e) => e.index > core.commitIndex).length
        if (uncommitted > 1) this.fail(`membership: leader ${n.id} holds ${uncommitted} uncommitted configurations`)
      }
    }
  }

  private heal(): void {
    this.liveness = true
    this.trace("---- heal")
    for (const n of this.nodes) {
      n.partition = 0
      if (n.core === undefined && !n.absent) this.start(n)
    }
    this.p.lossRate = 0
    this.p.dupRate = 0
    // A healed network (and disk) is fast next to a tick: catching a far-behind follower up takes
    // a few rounds.
    this.p.maxDelay = 0
    this.p.pendingRate = 0
  }

  // ------------------------------------------------------------------ nodes

  private start(n: SimNode): void {
    n.incarnation++
    if (n.incarnation > 1) this.coverage.restarts++
    const cfg: RaftConfig = {
      id: n.id,
      peers: n.joined ? [] : this.ids,
      electionTicks: this.p.electionTicks,
      heartbeatTicks: this.p.heartbeatTicks,
      seed: mixSeed(this.seed, n.incarnation),
      maxInflightMessages: this.p.maxInflight,
      maxAppendBytes: this.p.maxAppendBytes,
      snapshotChunkBytes: this.p.chunkBytes,
      snapshotChunksInflight: this.p.chunksInflight,
      preVote: this.p.preVote,
      checkQuorum: this.p.checkQuorum,
      maxCommittedBytesPerReady: 64,
    }
    const core = createRaft(cfg, n.disk.restored())
    n.core = core
    n.pending = undefined
    n.sentEarly = false
    const snap = n.disk.snapshot
    if (snap === undefined) n.service = { applied: 0, hash: 0 }
    else {
      const s = decodeServiceSnapshot(snap.data)
      if (typeof s === "string") this.fail(`restart ${n.id}: ${s}`)
      n.service = s
    }
    if (core.appliedIndex !== n.service.applied) {
      this.fail(`restart ${n.id}: applied ${core.appliedIndex} != restored snapshot ${n.service.applied}`)
    }
    if (core.commitIndex < n.disk.hardState.commit) {
      this.fail(`restart ${n.id}: commit ${core.commitIndex} below durable ${n.disk.hardState.commit}`)
    }
    n.lastCommit = core.commitIndex
    n.lastRole = core.role
    n.lastTerm = core.term
    this.trace(`start ${n.id} #${n.incarnation} term ${core.term} commit ${core.commitIndex} last ${core.lastIndex()}`)
  }

  private crash(n: SimNode): void {
    this.coverage.crashes++
    if (n.pending !== undefined) this.coverage.crashesLosingReady++
    if (n.core !== undefined && n.service.applied > n.core.durableIndex()) this.coverage.crashesLosingApplied++
    n.core = undefined
    n.pending = undefined
    this.trace(`crash ${n.id}`)
  }

  private takeReady(n: SimNode): void {
    const core = n.core as RaftCore
    const rd = core.ready()
    n.pending = rd
    // Log matching, checked on every entry that becomes durable anywhere: one (index, term) always
    // carries the same data and follows the same term.
    let prevTerm = rd.entries.length > 0 ? core.termAt((rd.entries[0] as Entry).index - 1) : 0
    if (prevTerm === undefined) this.fail(`ready ${n.id}: no term before first unstable entry`)
    for (const e of rd.entries) {
      const key = e.index * 65536 + e.term
      const value = mix(entryIdOf(e), prevTerm)
      const seen = this.entryRecords.get(key)
      if (seen === undefined) this.entryRecords.set(key, value)
      else if (seen !== value) this.fail(`log matching: entry (${e.index}, term ${e.term}) differs on node ${n.id}`)
      prevTerm = e.term
    }
    // What the Ready lets leave before its fsync may leave at once: a crash before the Ready is
    // persisted then finds it already on the wire.
    n.sentEarly = rd.messages.length > 0 && this.rng.chance(0.5)
    if (n.sentEarly) this.sendEarly(rd)
    // As the shell does: committed entries are durable on a majority (perhaps not yet here, even
    // among this Ready's own), so they are applied and reads answered while its write is pending
    // (and may be lost to a crash, as the applied state is).
    for (const e of rd.committedEntries) this.apply(n, e)
    this.answerReads(n, rd.readStates)
  }

  /**
   * As the shell does when inputs arrive while a Ready's write is in flight (sometimes: it may as
   * well leave everything to the next Ready): what takeDuringFlush hands out is acted on at once.
   */
  private maybeActDuringFlush(n: SimNode): void {
    const core = n.core
    if (core === undefined || n.pending === undefined || !this.rng.chance(0.5)) return
    const work = core.takeDuringFlush()
    const c = this.coverage
    c.messagesSentDuringFlush += work.messages.length
    c.entriesAppliedDuringFlush += work.committedEntries.length
    c.readsServedDuringFlush += work.readStates.length
    for (const m of work.messages) this.send(m)
    for (const e of work.committedEntries) this.apply(n, e)
    this.answerReads(n, work.readStates)
    if (work.messages.length + work.committedEntries.length + work.readStates.length > 0) {
      this.trace(
        `during flush ${n.id}: sent ${work.messages.length}, applied ${work.committedEntries.map((e) => e.index).join(",")}, reads ${work.readStates.length}`,
      )
    }
    this.afterStep("")
  }

  private answerReads(n: SimNode, readStates: readonly ReadState[]): void {
    const core = n.core as RaftCore
    for (const rs of readStates) {
      const req = this.reads.get(rs.requestId)
      if (req === undefined || req.node !== n.id || req.incarnation !== n.incarnation) {
        this.fail(`read ${rs.requestId} answered by node ${n.id} that was not asked`)
      }
      this.reads.delete(rs.requestId)
      if (rs.index < req.minIndex) {
        this.fail(`ReadIndex: read ${rs.requestId} at index ${rs.index} misses a write committed at ${req.minIndex}`)
      }
      if (rs.index > core.commitIndex) this.fail(`ReadIndex: read index ${rs.index} beyond commit ${core.commitIndex}`)
      this.coverage.readsServed++
    }
  }

  private sendEarly(rd: Ready): void {
    this.coverage.messagesSentEarly += rd.messages.length
    for (const m of rd.messages) this.send(m)
  }

  private completeReady(n: SimNode): void {
    const core = n.core as RaftCore
    const rd = n.pending as Ready
    n.pending = undefined
    this.digest = mix(this.digest, n.id)
    if (rd.hardState !== undefined) {
      this.digest = mix(mix(mix(this.digest, rd.hardState.term), rd.hardState.vote), rd.hardState.commit)
    }
    this.digest = mix(mix(this.digest, rd.entries.length), rd.committedEntries.length)
    if (!n.sentEarly) this.sendEarly(rd)
    n.sentEarly = false
    n.disk.persist(rd)
    for (const m of rd.messagesAfterPersist) this.send(m)
    if (rd.snapshot !== undefined) this.installSnapshot(n, rd.snapshot)
    core.advance(rd)
    if (core.appliedIndex !== n.service.applied) {
      this.fail(`node ${n.id}: core applied ${core.appliedIndex} but service applied ${n.service.applied}`)
    }
    this.afterStep(this.opts.trace ? `ready ${n.id}` : "")
  }

  private installSnapshot(n: SimNode, snap: Snapshot): void {
    this.coverage.snapshotsInstalled++
    const s = decodeServiceSnapshot(snap.data)
    if (typeof s === "string") this.fail(`install on ${n.id}: ${s}`)
    if (s.applied !== snap.index) this.fail(`install on ${n.id}: snapshot ${snap.index} holds state at ${s.applied}`)
    if (snap.index <= n.service.applied) {
      this.fail(`install on ${n.id}: snapshot ${snap.index} not after applied ${n.service.applied}`)
    }
    this.checkState(n.id, snap.index, s.hash)
    const rec = this.committed.get(snap.index)
    if (rec !== undefined && rec.term !== snap.term) this.fail(`install on ${n.id}: snapshot term differs from commit`)
    n.service = s
    this.trace(`install ${n.id} snapshot ${snap.index}`)
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index !== n.service.applied + 1) {
      this.fail(`apply on ${n.id}: index ${e.index} after ${n.service.applied} (gap or repeat)`)
    }
    const rec = this.committed.get(e.index)
    const dataId = entryIdOf(e)
    if (rec === undefined || rec.term !== e.term || rec.dataId !== dataId) {
      this.fail(`apply on ${n.id}: entry ${e.index} was not seen committed with this term/data`)
    }
    if (n.core !== undefined && e.index > n.core.durableIndex()) this.coverage.entriesAppliedBeforeDurable++
    n.service.applied = e.index
    n.service.hash = mix(mix(n.service.hash, e.index), dataId)
    this.checkState(n.id, e.index, n.service.hash)
  }

  private checkState(id: NodeId, index: number, hash: number): void {
    const seen = this.stateAt.get(index)
    if (seen === undefined) this.stateAt.set(index, hash)
    else if (seen !== hash) this.fail(`state machine safety: node ${id} state at ${index} differs`)
  }

  // ------------------------------------------------------------------ network

  private send(m: Message): void {
    this.checkDurable(m)
    const c = this.coverage
    c.messagesSent++
    this.digest = mix(mix(mix(mix(this.digest, TYPE_CODE[m.type]), m.from), m.to), m.term)
    switch (m.type) {
      case "Append":
        this.digest = mix(mix(this.digest, m.prevIndex), m.entries.length)
        break
      case "AppendResp":
        if (m.reject) c.rejectedAppends++
        this.digest = mix(this.digest, m.index)
        break
      case "Snap": {
        c.snapshotChunks++
        // A chunk from the middle that was sent before: the transfer resumed rather than restarting.
        const key = `${m.from}>${m.to}@${m.snapshot.index}`
        const furthest = this.snapshotOffsets.get(key) ?? -1
        if (m.offset > 0 && m.offset <= furthest) c.snapshotsResumed++
        if (m.offset > furthest) this.snapshotOffsets.set(key, m.offset)
        this.digest = mix(this.digest, m.offset)
        break
      }
      default:
        break
    }
    const r = this.rng
    if (this.partitioned(m.from, m.to) || r.chance(this.p.lossRate)) {
      c.messagesDropped++
      return
    }
    this.schedule(m)
    if (r.chance(this.p.dupRate)) {
      c.messagesDuplicated++
      this.schedule(m)
    }
  }

  private schedule(m: Message): void {
    const delay = this.p.maxDelay === 0 || this.rng.chance(0.6) ? 0 : 1 + this.rng.nextInt(this.p.maxDelay)
    if (delay === 0) {
      this.due.push(m)
      return
    }
    const at = this.now + delay
    const list = this.future.get(at)
    if (list === undefined) this.future.set(at, [m])
    else list.push(m)
  }

  private partitioned(a: NodeId, b: NodeId): boolean {
    return this.nodes[a - 1]?.partition !== this.nodes[b - 1]?.partition
  }

  private deliver(m: Message): void {
    const n = this.nodes[m.to - 1]
    if (n?.core === undefined || this.partitioned(m.from, m.to)) {
      this.coverage.messagesDropped++
      return
    }
    n.core.step(m)
    if (this.opts.trace) this.afterStep(`deliver ${describeMessage(m)}`)
    else this.afterStep("")
    this.maybeActDuringFlush(n)
  }

  // ------------------------------------------------------------------ invariants

  /** Persist before you send: see `promiseNotDurable`. */
  private checkDurable(m: Message): void {
    const disk = (this.nodes[m.from - 1] as SimNode).disk
    const broken = promiseNotDurable(m, disk)
    if (broken !== undefined) {
      this.fail(
        `persist before send: ${describeMessage(m)} ${broken} (durable term ${disk.hardState.term} vote ${disk.hardState.vote})`,
      )
    }
  }

  /** Checks run after every step: election safety, commit monotonicity, leader completeness. */
  private afterStep(what: string): void {
    this.step++
    if (this.opts.trace) this.trace(what)
    for (const n of this.nodes) {
      const core = n.core
      if (core === undefined) continue
      const role = core.role
      const term = core.term
      if (term < n.lastTerm) this.fail(`node ${n.id}: term went back from ${n.lastTerm} to ${term}`)
      // A leader counts once its term is durable. A lone voter wins its election inside one step,
      // before that term reaches its disk; if it crashes first it never led: every message of the
      // Ready that raised its term waits for the fsync (checkDurable), and on restart it may grant
      // that term to another candidate, such as a leader that removed itself before its removal
      // committed (thesis §4.2.2).
      if (role === "leader" && n.disk.hardState.term === term) {
        const other = this.leaderOfTerm.get(term)
        if (other === undefined) {
          this.leaderOfTerm.set(term, n.id)
          this.onNewLeader(n, core)
        } else if (other !== n.id) {
          this.fail(`election safety: nodes ${other} and ${n.id} both lead term ${term}`)
        }
      }
      if (role !== n.lastRole) {
        if ((role === "pre-candidate" || role === "candidate") && !mayCampaign(core)) {
          this.fail(`membership: node ${n.id} campaigns as ${core.status().self}`)
        }
        if (n.lastRole === "leader" && core.status().self === "removed") this.coverage.removedLeadersSteppedDown++
        if (role === "pre-candidate") this.coverage.preVoteCampaigns++
        else if (role === "candidate") this.coverage.elections++
        else if (role === "follower" && n.lastRole === "pre-candidate") this.coverage.preVotesFailed++
      }
      n.lastRole = role
      n.lastTerm = term
      const commit = core.commitIndex
      if (commit < n.lastCommit) this.fail(`node ${n.id}: commit went back from ${n.lastCommit} to ${commit}`)
      if (commit > n.lastCommit) {
        for (let i = n.lastCommit + 1; i <= commit; i++) {
          const e = core.entryAt(i)
          if (e === undefined) continue
          const rec = this.committed.get(i)
          const dataId = entryIdOf(e)
          if (rec === undefined) {
            this.committed.set(i, { term: e.term, dataId, commitTerm: term })
            this.coverage.entriesCommitted++
            if (e.config !== undefined) this.coverage.configsCommitted++
          } else if (rec.term !== e.term || rec.dataId !== dataId) {
            this.fail(
              `commit safety: node ${n.id} commits (${i}, term ${e.term}) but (${i}, term ${rec.term}) was committed`,
            )
          } else if (term < rec.commitTerm) {
            rec.commitTerm = term
          }
        }
        n.lastCommit = commit
        if (commit > this.maxCommitted) this.maxCommitted = commit
      }
      if (core.appliedIndex > commit) this.fail(`node ${n.id}: applied ${core.appliedIndex} beyond commit ${commit}`)
    }
  }

  /**
   * Leader completeness (§5.4): a new leader of term T holds every entry committed in a term
   * before T. (A late election of an older term may miss entries committed since, legitimately.)
   */
  private onNewLeader(n: SimNode, core: RaftCore): void {
    this.coverage.leadersElected++
    const term = core.term
    if (!mayCampaign(core)) this.fail(`membership: node ${n.id} leads term ${term} as ${core.status().self}`)
    if (this.transferTargets.get(n.id) === term - 1) this.coverage.transfersCompleted++
    this.transferTargets.delete(n.id)
    for (let i = core.firstIndex(); i <= this.maxCommitted; i++) {
      const rec = this.committed.get(i)
      if (rec !== undefined && rec.commitTerm < term && core.termAt(i) !== rec.term) {
        this.fail(
          `leader completeness: leader ${n.id} of term ${term} lacks entry ${i} committed in term ${rec.commitTerm}`,
        )
      }
    }
    this.trace(`leader ${n.id} term ${term}`)
  }

  private makeData(dataId: number): Uint8Array {
    const data = new Uint8Array(4 + this.rng.nextInt(24))
    data[0] = dataId & 255
    data[1] = (dataId >>> 8) & 255
    data[2] = (dataId >>> 16) & 255
    data[3] = (dataId >>> 24) & 255
    return data
  }

  private trace(line: string): void {
    if (!this.opts.trace) return
    this.traceLines.push(`[t${this.now} s${this.step}] ${line}`)
  }

  private fail(invariant: string): never {
    throw new InvariantViolation(`${invariant} (round ${this.now}, step ${this.step})`, this.traceLines)
  }
}

export const runSimulation = (seed: number, opts: SimOptions = {}): SimResult => new Simulation(seed, opts).run()
