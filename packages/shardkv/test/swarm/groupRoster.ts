/**
 * The replicas of the sharded swarm's groups, whose membership changes during a seed: each group
 * starts with replicas 1–3 (bootstrap members) and gains members on new addresses (started to join,
 * added as learners through the group's leader, most of them promoted) and loses members (removed
 * through the leader, the leader included, then killed for good). A group wiped empty starts again
 * from its bootstrap members as a new incarnation.
 */
import type { NodeId, RaftNodeShape, Storage } from "@kv/raft"
import type { RpcNode } from "@kv/rpc"
import type { Rng } from "@kv/sim"
import type { SimWorld } from "@kv/testkit"
import { Effect, type Scope } from "effect"
import type { ShardKvServerShape } from "../../src/index.ts"

export interface Replica {
  readonly gid: number
  readonly id: number
  readonly address: string
  /** The members it first knows of: the bootstrap members, or for a new member the group as it was. */
  readonly peers: Readonly<Record<number, string>>
  /** Started to join the existing group (a new member), not to bootstrap it. */
  readonly join: boolean
}

/**
 * When membership changes may happen. Today a change starts only when no partition is in force and
 * every member is up and caught up, and faults that could keep a member from receiving it (crashes,
 * partitions, crashes inside a write) hold off until every member has it: a member whose log lacks
 * the entry that added the group's leader cannot hear that leader (the Raft node drops messages
 * from ids no configuration it holds names), so it stays behind until a leader it knows is elected.
 */
export interface ChangeWindow {
  /** False: changes start whenever chosen, whatever the faults (what the swarm means to run once that is fixed). */
  readonly calm: boolean
  /** Whether a change may start now; if so, the window is open until `close`. */
  open(): boolean
  close(): void
}

/** Bound for one membership change, retries included (virtual time). */
const CHANGE_BOUND_MS = 3_000
/** A group never has more members than this, nor fewer voters than its bootstrap three. */
const MAX_MEMBERS = 5
const MIN_VOTERS = 3

export const storageName = (gid: number, id: number) => `shardkv-${gid}-${id}`

export class GroupRoster {
  /** Per gid, every replica that is, was started to become, or may still be a member (in id order). */
  readonly #replicas = new Map<number, Replica[]>()
  /** Removed members still running until every remaining member holds their removal (see #remove). */
  readonly #lingering = new Map<number, Replica[]>()
  readonly #nextId = new Map<number, number>()
  /** Bumped when a group is wiped: a change started before then is abandoned. */
  readonly #epoch = new Map<number, number>()
  readonly #changing = new Set<number>()
  /** The latest server started at each address. */
  readonly servers = new Map<string, ShardKvServerShape>()

  constructor(
    private readonly world: SimWorld,
    gids: readonly number[],
    private readonly window: ChangeWindow,
    private readonly build: (
      replica: Replica,
    ) => Effect.Effect<ShardKvServerShape, unknown, Scope.Scope | RpcNode | Storage>,
  ) {
    for (const gid of gids) {
      this.#replicas.set(gid, bootstrap(gid))
      this.#nextId.set(gid, 4)
      this.#epoch.set(gid, 0)
    }
  }

  all(): Replica[] {
    return [...this.#replicas.values()].flat()
  }

  of(gid: number): readonly Replica[] {
    return this.#replicas.get(gid) ?? []
  }

  /** Every address a replica of the swarm has had (partitions cut among them). */
  addresses(): string[] {
    return this.all().map((r) => r.address)
  }

  /** The bootstrap members' addresses (what `cluster.toml` would say). */
  bootstrapServers(gid: number): string[] {
    return Object.values(bootstrap(gid)[0]!.peers)
  }

  start(replica: Replica): Effect.Effect<void, unknown> {
    return this.world.start(replica.address, this.build(replica)).pipe(
      Effect.tap((server) => Effect.sync(() => this.servers.set(replica.address, server))),
      Effect.asVoid,
    )
  }

  /** The running replica of `gid` that leads (the one of the highest term, should two think so). */
  leader(gid: number): ShardKvServerShape | undefined {
    return this.of(gid)
      .filter((r) => this.world.isRunning(r.address))
      .map((r) => this.servers.get(r.address)!)
      .filter((s) => s.rsm.raft.status().role === "leader")
      .sort((a, b) => b.rsm.raft.status().term - a.rsm.raft.status().term)[0]
  }

  /** The replicas the group's leader names as members; undefined while the group has no leader. */
  members(gid: number): Replica[] | undefined {
    const members = this.leader(gid)?.rsm.raft.status().members
    if (members === undefined) return undefined
    return this.of(gid).filter((r) => members.some((m) => m.id === r.id))
  }

  /** The group's servers as its leader knows them, or the bootstrap ones when it has none now. */
  currentServers(gid: number): string[] {
    return this.members(gid)?.map((r) => r.address) ?? this.bootstrapServers(gid)
  }

  /** Crashes every replica of `gid`, loses their disks and starts the bootstrap members empty. */
  wipe(gid: number): Effect.Effect<void, unknown> {
    const roster = this
    return Effect.gen(function* () {
      roster.#epoch.set(gid, roster.#epoch.get(gid)! + 1)
      const every = [...roster.of(gid), ...(roster.#lingering.get(gid) ?? [])]
      roster.#lingering.delete(gid)
      for (const r of every) yield* roster.world.crash(r.address)
      for (const r of every) roster.world.disks.delete(storageName(gid, r.id))
      roster.#replicas.set(gid, bootstrap(gid))
      for (const r of roster.of(gid)) yield* roster.start(r)
    })
  }

  /**
   * One membership change chosen by `random`, through the group's leader, one at a time per group:
   * a member removed when the group can spare one; a member added (most of them promoted); or a
   * member replaced (a new one added and promoted, then an old voter removed). Returns what it did.
   */
  changeMembers(gid: number, random: Rng): Effect.Effect<string | undefined, unknown> {
    if (this.#changing.has(gid) || !this.window.open()) return Effect.succeed(undefined)
    this.#changing.add(gid)
    const roster = this
    const epoch = this.#epoch.get(gid)!
    return Effect.gen(function* () {
      const members = roster.leader(gid)?.rsm.raft.status().members ?? []
      const behind = members.some(
        (m) =>
          !roster.world.isRunning(roster.of(gid).find((r) => r.id === m.id)?.address ?? "") || m.lag < 0 || m.lag >= 20,
      )
      if (members.length === 0 || (roster.window.calm && behind)) return undefined
      const voters = members.filter((m) => m.role !== "learner").length
      const removable = members.length > voters || voters > MIN_VOTERS
      if (removable && (members.length >= MAX_MEMBERS || random.chance(0.5))) {
        return yield* roster.#remove(gid, epoch, random)
      }
      if (!random.chance(0.4)) return yield* roster.#add(gid, epoch, random.chance(0.8))
      const added = yield* roster.#add(gid, epoch, true)
      if (added === undefined || !added.endsWith("promote it")) return added
      const removed = yield* roster.#remove(gid, epoch, random, true)
      return removed === undefined ? added : `replace: ${added}, ${removed}`
    }).pipe(
      Effect.ensuring(
        Effect.sync(() => {
          roster.#changing.delete(gid)
          roster.window.close()
        }),
      ),
    )
  }

  /**
   * A new member on a new address: started to join, added as a learner through the leader, and
   * (if `promote`) promoted once it has caught up. Returns what it did.
   */
  #add(gid: number, epoch: number, promote: boolean): Effect.Effect<string | undefined, unknown> {
    const roster = this
    return Effect.gen(function* () {
      const members = roster.leader(gid)?.rsm.raft.status().members
      if (members === undefined || members.length >= MAX_MEMBERS) return undefined
      const id = roster.#nextId.get(gid)!
      roster.#nextId.set(gid, id + 1)
      const address = `g${gid}-${id}`
      const peers: Record<number, string> = { [id]: address }
      for (const m of members) if (m.address !== "") peers[m.id] = m.address
      const replica: Replica = { gid, id, address, peers, join: true }
      roster.#replicas.get(gid)!.push(replica)
      yield* roster.start(replica)
      if (!(yield* roster.#change(gid, epoch, (raft) => raft.addLearner(id as NodeId, address), "AlreadyMember"))) {
        return `add ${address} (not confirmed)`
      }
      if (!promote) return `add ${address} as a learner`
      const from = roster.world.now()
      while (roster.world.now() - from < CHANGE_BOUND_MS && roster.#epoch.get(gid) === epoch) {
        const lag = roster
          .leader(gid)
          ?.rsm.raft.status()
          .members.find((m) => m.id === id)?.lag
        if (lag !== undefined && lag >= 0 && lag < 20) break
        yield* Effect.sleep(20)
      }
      const promoted = yield* roster.#change(gid, epoch, (raft) => raft.promote(id as NodeId), "AlreadyMember")
      return promoted ? `add ${address} and promote it` : `add ${address} (promotion not confirmed)`
    })
  }

  /**
   * Removes a member chosen by `random` (a learner, or a voter while more than three remain; the
   * leader too; only the oldest voters when `oldVoter`), then kills it for good once every remaining
   * member holds the removal. Returns what it did.
   */
  #remove(gid: number, epoch: number, random: Rng, oldVoter = false): Effect.Effect<string | undefined, unknown> {
    const roster = this
    return Effect.gen(function* () {
      const members = roster.leader(gid)?.rsm.raft.status().members
      if (members === undefined) return undefined
      const voters = members.filter((m) => m.role !== "learner")
      const candidates = oldVoter
        ? voters.slice(0, voters.length - 1)
        : members.filter((m) => m.role === "learner" || voters.length > MIN_VOTERS)
      if (candidates.length === 0 || voters.length <= (oldVoter ? MIN_VOTERS : 0)) return undefined
      const id = candidates[random.nextInt(candidates.length)]!.id
      const replica = roster.of(gid).find((r) => r.id === id)
      if (replica === undefined) return undefined
      if (!(yield* roster.#change(gid, epoch, (raft) => raft.removeMember(id as NodeId), "UnknownMember"))) {
        return `remove ${replica.address} (not confirmed)`
      }
      if (roster.#epoch.get(gid) !== epoch) return undefined
      // A removed machine is switched off only once every remaining member holds its removal: a
      // member cut off meanwhile may know no other live member's address yet, and asks the ones it
      // knows (the removed one included) where the new ones live. Until then it keeps running,
      // out of the roster, as an operator would leave it until the group has moved on.
      const status = roster.leader(gid)?.rsm.raft.status()
      const everyoneHasIt = status?.members.every((m) => m.match >= status.membershipIndex) ?? false
      if (everyoneHasIt) {
        yield* roster.world.crash(replica.address)
        roster.world.disks.delete(storageName(gid, id))
      } else {
        roster.#lingering.set(gid, [...(roster.#lingering.get(gid) ?? []), replica])
      }
      roster.#replicas.set(
        gid,
        roster.of(gid).filter((r) => r !== replica),
      )
      return `remove ${replica.address}`
    })
  }

  /** Waits (bounded) until every member holds the group's latest configuration entry. */
  #settle(gid: number, epoch: number): Effect.Effect<void> {
    const roster = this
    return Effect.gen(function* () {
      const from = roster.world.now()
      while (roster.world.now() - from < CHANGE_BOUND_MS && roster.#epoch.get(gid) === epoch) {
        const status = roster.leader(gid)?.rsm.raft.status()
        if (!roster.window.calm || status?.members.every((m) => m.match >= status.membershipIndex)) return
        yield* Effect.sleep(20)
      }
    })
  }

  /**
   * `change` on the group's leader until it succeeds or fails with `done` (a retry of a change that
   * took effect), within the bound; false if it never did, or the group was wiped meanwhile.
   */
  #change(
    gid: number,
    epoch: number,
    change: (raft: RaftNodeShape) => Effect.Effect<unknown, { readonly _tag: string }>,
    done: string,
  ): Effect.Effect<boolean> {
    const roster = this
    return Effect.gen(function* () {
      const from = roster.world.now()
      while (roster.world.now() - from < CHANGE_BOUND_MS && roster.#epoch.get(gid) === epoch) {
        const leader = roster.leader(gid)
        if (leader !== undefined) {
          const result = yield* Effect.result(change(leader.rsm.raft).pipe(Effect.timeout(1_000)))
          if (roster.#epoch.get(gid) !== epoch) return false
          if (result._tag === "Success" || result.failure._tag === done) {
            yield* roster.#settle(gid, epoch)
            return true
          }
        }
        yield* Effect.sleep(50)
      }
      return false
    })
  }
}

const bootstrap = (gid: number): Replica[] => {
  const peers = { 1: `g${gid}-1`, 2: `g${gid}-2`, 3: `g${gid}-3` }
  return [1, 2, 3].map((id) => ({ gid, id, address: `g${gid}-${id}`, peers, join: false }))
}
