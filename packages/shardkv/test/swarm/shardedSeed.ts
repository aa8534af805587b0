/**
 * One seed of the sharded swarm. The world is a real controller (3 replicas), groups 100–102 (3
 * replicas each), three clerks appending and reading, racing compare-and-swaps on one key and
 * transfers between two hash-tagged counters (`{acct}x`, `{acct}y`: one shard, so one transaction
 * may hold both) that compare both counters' versions or mod revisions, and a writer of values up
 * to the maximum size into keys of one shard, so that shard spans many install pieces and is larger than one Raft
 * message. The world's messages are small (64 KiB) and so are values (12 KiB): sizes scale with
 * the message, the shapes do not.
 *
 * The seed chooses its faults for a while: partitions, loss, duplication, delay; replica crashes
 * (some inside a durable write, which is then kept whole or lost whole) and restarts (some with
 * the clock hours off); live clock jumps of hours; admin sequences (join, leave, move, every group
 * leaving and one coming back); a group that holds nothing any more wiped and started empty under
 * its gid (a new incarnation); forged shard pulls and deletes from an address outside every group;
 * membership churn in the groups (a replica on a new address added as a learner and mostly promoted,
 * a learner or voter removed, the leader included, and killed for good), which the groups' leaders
 * carry to the controller's configurations.
 * Some seeds end, after the checks, by wiping a group that holds shards: it must be refused.
 * Then everything heals, and within a bound every clerk finishes an operation and every replica
 * the group names as a member reaches the latest configuration, which lists every group's members.
 *
 * Checked: at most one group serves a shard in any configuration (sampled throughout), no active
 * client session expires whatever a replica's clock says, the history (final reads included) is
 * linearizable (a transaction one atomic step over both counters, wherever their shard moved), every
 * acknowledged append is present exactly once, the counters still sum to their total.
 */
import type { NodeId } from "@kv/raft"
import { type Config, makeControllerClient, shardOf } from "@kv/shardctrler"
import { type Rng, TraceDigest } from "@kv/sim"
import { type CoordinationCounts, SimWorld, SwarmLedger, type SwarmSeedResult, watchExpiredSessions } from "@kv/testkit"
import { Effect, Exit, Fiber } from "effect"
import { makeShardKvClient, makeShardKvServer, ShardDeleteMethod, ShardPullMethod } from "../../src/index.ts"
import { startControllers } from "../support/worldScenario.ts"
import { type ChangeWindow, GroupRoster, storageName } from "./groupRoster.ts"

export const N_SHARDS = 10
/** The world's largest message; Raft's largest entry is a little less. */
export const MESSAGE_BYTES = 64 * 1024
export const MAX_VALUE_BYTES = 12 * 1024
export const FAULT_PHASE_MS = 4_000
export const LIVENESS_BOUND_MS = 30_000
const KEYS = ["a", "b", "c", "d", "e", "f"]
const CAS_KEY = "mutex"
const TRANSFER_KEYS = ["{acct}x", "{acct}y"] as const
const GIDS = [100, 101, 102]
const HOUR_MS = 3_600_000
/** Share of seeds that end by wiping a group that holds shards (then refused, its gid retired). */
const RETIRE_CHANCE = 0.15
/** KV_SWARM_TRACE=1 prints each fault as it happens and, at the end, every configuration. */
const TRACE = process.env.KV_SWARM_TRACE === "1"

/** The shard the large values go to, and keys in it: enough that the shard outgrows one message. */
export const BIG_SHARD = 7
export const BIG_KEYS = Array.from({ length: 400 }, (_, i) => `big${i}`)
  .filter((key) => shardOf(key, N_SHARDS) === BIG_SHARD)
  .slice(0, 8)

export interface ShardedSeedResult extends SwarmSeedResult {
  /** Digest of the recorded history, the virtual end time and the traffic: equal for equal runs. */
  readonly digest: string
  /** How many of each fault the seed chose. */
  readonly faults: Readonly<Record<string, number>>
  readonly coordination: CoordinationCounts
}

const pick = <A>(rng: Rng, items: readonly A[]): A => items[rng.nextInt(items.length)]!

export const runShardedSeed = (seed: number): ShardedSeedResult => {
  const world = new SimWorld(seed, { maxMessageBytes: MESSAGE_BYTES })
  const { network } = world
  const faults = world.stream("faults")
  const clientRandom = world.stream("clients")
  const writerRandom = world.stream("writer")
  const faultCounts: Record<string, number> = {}
  const count = (fault: string) => {
    if (TRACE) console.log(`${world.now().toFixed(0)} ${fault} joined=${[...joined].join(",")}`)
    faultCounts[fault] = (faultCounts[fault] ?? 0) + 1
  }
  const ctrlPeers: Record<number, string> = { 1: "ctrl-1", 2: "ctrl-2", 3: "ctrl-3" }
  const controllers = Object.values(ctrlPeers)
  const ledger = new SwarmLedger([...KEYS, ...BIG_KEYS])
  // Some seeds snapshot (the large shard then travels in InstallSnapshot too), some never do.
  const maxRaftStateBytes = faults.chance(0.5) ? 96 * 1024 : undefined
  /** `${configNum}:${shard}` → the group seen serving it. */
  const servedBy = new Map<string, number>()
  const joined = new Set<number>()
  let problem: string | undefined

  // Membership changes start under any fault: a member cut off while its group added the leader
  // it hears after healing learns that leader's address from the members it knows.
  const window: ChangeWindow = { calm: false, open: () => true, close: () => {} }
  const roster = new GroupRoster(world, GIDS, window, ({ gid, id, peers, join }) =>
    makeShardKvServer({
      gid,
      id: id as NodeId,
      peers,
      join,
      controllers,
      nShards: N_SHARDS,
      seed: seed * 13 + gid + id,
      tickMs: 10,
      limits: { maxValueBytes: MAX_VALUE_BYTES },
      maxRaftStateBytes,
      storageName: storageName(gid, id),
    }),
  )
  const groupServers = roster.servers

  /** Two groups never serve one shard in one configuration. */
  const checkServing = () => {
    for (const { gid, address } of roster.all()) {
      if (!world.isRunning(address)) continue
      const machine = groupServers.get(address)!.machine()
      machine.shardStates().forEach((state, shard) => {
        if (state !== "Serving" && state !== "AwaitingGc") return
        const key = `${machine.config.num}:${shard}`
        const other = servedBy.get(key)
        if (other === undefined) servedBy.set(key, gid)
        else if (other !== gid)
          problem ??= `shard ${shard} served by groups ${other} and ${gid} in configuration ${machine.config.num}`
      })
    }
  }

  /** The group's furthest applied state, from its replicas' last known machines. */
  const groupMachine = (gid: number) =>
    roster
      .of(gid)
      .filter((r) => groupServers.has(r.address))
      .map((r) => groupServers.get(r.address)!)
      .sort((x, y) => y.rsm.raft.status().appliedIndex - x.rsm.raft.status().appliedIndex)[0]
      ?.machine()

  /**
   * A group that nothing needs any more: at the latest configuration, not a member, every shard
   * handed off and deleted, nothing parked. Wiping it loses nothing; it comes back as a new
   * incarnation of its gid.
   */
  const holdsNothing = (gid: number, latest: number) => {
    const machine = groupMachine(gid)
    if (machine === undefined || machine.config.num !== latest || String(gid) in machine.config.groups) return false
    return machine.shardStates().every((state, shard) => state === "Absent" && machine.parkedAt(shard) === undefined)
  }

  /** Each replica's configuration, role, log and shards, and what it pulls: for a failure's report. */
  const describeGroups = () =>
    roster
      .all()
      .filter((r) => groupServers.has(r.address))
      .map((r) => {
        const server = groupServers.get(r.address)!
        const s = server.status()
        const pulls = server
          .machine()
          .pulls()
          .map((t) => `${t.shard}<-${t.fromGid}@${t.handOffConfigNum}`)
        return (
          `${r.address}${world.isRunning(r.address) ? "" : " (down)"}: configuration ${s.configNum}, ${s.role}, ` +
          `term ${s.term}, applied ${s.appliedIndex}/${s.lastIndex}, ${s.member} of ` +
          `[${s.members.map((m) => `${m.id}:${m.role}`).join(",")}], shards [${s.shards.join(",")}]` +
          (pulls.length === 0 ? "" : `, pulling ${pulls.join(" ")}`) +
          (s.retired === "" ? "" : `, retired: ${s.retired}`)
        )
      })
      .join("\n")

  const program = Effect.gen(function* () {
    yield* startControllers(world, ctrlPeers, N_SHARDS, seed)
    for (const replica of roster.all()) yield* roster.start(replica)
    network.setMaxDelay(5)
    const admin = yield* makeControllerClient(yield* world.client("admin"), { controllers, deadlineMs: 5_000 })
    const forger = yield* world.client("forger")
    // An operator joins a group with the replicas it has now (or its bootstrap ones when it cannot tell).
    const join = (gid: number) =>
      admin.join({ [String(gid)]: roster.currentServers(gid) }).pipe(
        Effect.tap(() => Effect.sync(() => joined.add(gid))),
        Effect.ignore,
      )
    const leave = (gids: number[]) =>
      admin.leave(gids).pipe(
        Effect.tap(() =>
          Effect.sync(() => {
            for (const g of gids) joined.delete(g)
          }),
        ),
        Effect.ignore,
      )
    yield* join(pick(faults, GIDS))

    const inFaults = () => world.now() < FAULT_PHASE_MS
    const newClient = (name: string) =>
      Effect.gen(function* () {
        const rpc = watchExpiredSessions(yield* world.client(name), (method) => {
          problem ??= `${name}: an active client session expired (${method} answered SessionExpired)`
        })
        return yield* makeShardKvClient(rpc, { controllers, deadlineMs: 4_000 })
      })
    const clients = yield* Effect.forEach([1, 2, 3], (n) => newClient(`clerk-${n}`))
    const writer = yield* newClient("writer")
    const coordRandom = world.stream("coordination")
    const clerks = yield* Effect.forEach(clients, (kv, i) =>
      Effect.forkChild(ledger.clerk(i + 1, kv, clientRandom, inFaults, { keys: KEYS, maxThinkMs: 40 })),
    )
    // The same clients race read-then-CAS updates of one key and transfers between the counters.
    const casClerks = yield* Effect.forEach(clients, (kv, i) =>
      Effect.forkChild(ledger.casClerk(i + 1, kv, CAS_KEY, coordRandom, inFaults, 800)),
    )
    const transferClerks = yield* Effect.forEach(clients, (kv, i) =>
      Effect.forkChild(ledger.transferClerk(i + 1, kv, TRANSFER_KEYS, coordRandom, inFaults, 700)),
    )
    // Values up to the largest allowed, so the big shard outgrows one message early and stays so.
    const bigValue = (n: number) => {
      const size = MAX_VALUE_BYTES / 2 + writerRandom.nextInt(MAX_VALUE_BYTES / 2 - 16)
      return `w${n}:`.padEnd(size, String.fromCharCode(97 + (n % 26)))
    }
    const bigWriter = Effect.forkChild(
      Effect.gen(function* () {
        let n = 0
        for (const key of BIG_KEYS) yield* Effect.ignore(ledger.put(10, writer, key, bigValue(n++)))
        while (inFaults()) {
          yield* Effect.sleep(50 + writerRandom.nextInt(400))
          yield* Effect.ignore(ledger.put(10, writer, pick(writerRandom, BIG_KEYS), bigValue(n++)))
        }
      }),
    )
    const writerFiber = yield* bigWriter

    /**
     * While shards move between groups, forged deletes (and pulls) of them reach their sources from an
     * address outside every group, naming exactly what the real puller would.
     */
    const forgeRandom = world.stream("forger")
    const forge = Effect.gen(function* () {
      const tasks = GIDS.flatMap((gid) => groupMachine(gid)?.pulls() ?? [])
      if (tasks.length === 0 || !forgeRandom.chance(0.3)) return
      for (const task of tasks) {
        for (const server of task.servers) {
          const request = { configNum: task.handOffConfigNum, toConfigNum: task.configNum, shard: task.shard }
          yield* forger
            .call(server, ShardDeleteMethod, request, { attemptTimeoutMs: 50, deadlineMs: 100 })
            .pipe(Effect.ignore, Effect.forkChild)
          yield* forger
            .call(server, ShardPullMethod, { ...request, offset: 0 }, { attemptTimeoutMs: 50, deadlineMs: 100 })
            .pipe(Effect.ignore, Effect.forkChild)
        }
      }
      count("forged deletes and pulls")
    })
    const forgerFiber = yield* Effect.forkChild(
      Effect.gen(function* () {
        while (inFaults()) {
          yield* Effect.sleep(50 + forgeRandom.nextInt(100))
          yield* forge
        }
      }),
    )

    /**
     * After the checks: a group that holds shards loses every replica's data and starts empty. Its
     * shards are lost with it, so nothing is checked of them; what is checked is the refusal: its
     * new incarnation takes no part (the gid is retired) and joining the gid again fails.
     */
    const wipeHolder = Effect.gen(function* () {
      const latest = yield* admin.query(-1)
      const holders = GIDS.filter((gid) => latest.shards.includes(gid))
      if (holders.length === 0) return
      const gid = pick(faults, holders)
      count("wipe a group holding shards")
      yield* roster.wipe(gid)
      const wipedAt = world.now()
      const groupReplicas = roster.of(gid)
      // The leader's loop learns of the refusal; its status says so (what `kv status` shows).
      const refused = () => groupReplicas.some((r) => groupServers.get(r.address)!.status().retired !== "")
      while (!refused() && world.now() - wipedAt < LIVENESS_BOUND_MS) yield* Effect.sleep(100)
      if (!refused()) {
        problem ??= `group ${gid} lost its data while holding shards, yet is not refused within ${LIVENESS_BOUND_MS} ms:\n${describeGroups()}`
        return
      }
      const rejoin = yield* admin.join({ [String(gid)]: roster.bootstrapServers(gid) }).pipe(Effect.result)
      const retired =
        rejoin._tag === "Failure" && rejoin.failure._tag === "ControllerError" && rejoin.failure.code === "GidRetired"
      if (!retired) problem ??= `join of retired gid ${gid} was not refused with GidRetired: ${String(rejoin)}`
    })

    const churnRandom = world.stream("churn")
    const churn: Fiber.Fiber<unknown, unknown>[] = []
    while (inFaults()) {
      yield* Effect.sleep(100 + faults.nextInt(600))
      checkServing()
      const dice = faults.nextInt(112)
      const replicas = roster.all()
      const everyone = [...controllers, ...roster.addresses()]
      if (dice < 9) {
        world.partitionRandomly(everyone, faults)
        count("partition")
      } else if (dice < 18) {
        network.heal()
        count("heal")
      } else if (dice < 28) {
        const running = replicas.filter((r) => world.isRunning(r.address))
        if (running.length > 0) {
          const victim = pick(faults, running).address
          if (faults.chance(0.4)) {
            world.crashDuringNextSave(victim)
            count("crash inside a write")
          } else {
            yield* world.crash(victim)
            count("crash")
          }
        }
      } else if (dice < 40) {
        const down = replicas.filter((r) => !world.isRunning(r.address))
        if (down.length > 0) {
          const r = pick(faults, down)
          if (faults.chance(0.25)) {
            world.skewMs.set(r.address, (faults.chance(0.5) ? 1 : -1) * (1 + faults.nextInt(3)) * HOUR_MS)
            count("restart with the clock hours off")
          } else count("restart")
          yield* roster.start(r)
        }
      } else if (dice < 44) {
        const running = replicas.filter((r) => world.isRunning(r.address))
        if (running.length > 0) {
          world.jumpClock(
            pick(faults, running).address,
            (faults.chance(0.5) ? 1 : -1) * (1 + faults.nextInt(3)) * HOUR_MS,
          )
          count("clock jump")
        }
      } else if (dice < 51) {
        network.setDropRate(faults.nextInt(3) * 0.05)
        network.setDuplicateRate(faults.nextInt(2) * 0.05)
        network.setMaxDelay(1 + faults.nextInt(20))
        count("loss, duplication, delay")
      } else if (dice < 61) {
        const out = GIDS.filter((g) => !joined.has(g))
        if (out.length > 0) {
          yield* join(pick(faults, out))
          count("join")
        }
      } else if (dice < 68) {
        if (joined.size > 0) {
          yield* leave([pick(faults, [...joined])])
          count("leave")
        }
      } else if (dice < 76) {
        if (joined.size > 0) {
          const shard = faults.chance(0.5) ? BIG_SHARD : faults.nextInt(N_SHARDS)
          yield* admin.move(shard, pick(faults, [...joined])).pipe(Effect.ignore)
          count(shard === BIG_SHARD ? "move the big shard" : "move")
        }
      } else if (dice < 81) {
        if (joined.size > 0) yield* leave([...joined])
        const back = GIDS
        if (back.length > 0) yield* join(pick(faults, back))
        count("every group leaves, one comes back")
      } else if (dice < 87) {
        const latest = yield* admin.query(-1).pipe(Effect.option)
        const idle =
          latest._tag === "Some" ? GIDS.filter((g) => !joined.has(g) && holdsNothing(g, latest.value.num)) : []
        if (idle.length > 0) {
          const gid = pick(faults, idle)
          yield* roster.wipe(gid)
          count("wipe a group that left")
        }
      } else {
        // A membership change runs beside the other faults; the group's leader carries it through.
        const gid = pick(faults, GIDS)
        const counted = roster.changeMembers(gid, churnRandom).pipe(
          Effect.tap((what) =>
            Effect.sync(() => {
              if (what === undefined) return
              if (TRACE) console.log(`${world.now().toFixed(0)} ${what}`)
              count(
                what.includes("not confirmed")
                  ? "membership change not confirmed"
                  : what.startsWith("replace")
                    ? "member replaced"
                    : what.startsWith("remove")
                      ? "member removed"
                      : what.includes("promote")
                        ? "member added and promoted"
                        : "member added as a learner",
              )
            }),
          ),
          Effect.ignore,
        )
        churn.push(yield* Effect.forkChild(counted))
      }
    }
    // Heal: every replica up, every link whole and clean, at least one group serving.
    world.healNetwork()
    world.disarmSaveCrashes()
    yield* Effect.forEach(churn, Fiber.join)
    for (const r of roster.all()) if (!world.isRunning(r.address)) yield* roster.start(r)
    if (joined.size === 0) {
      yield* join(GIDS[0]!)
    }
    yield* Effect.forEach([...clerks, ...casClerks, ...transferClerks], Fiber.join)
    yield* Fiber.join(writerFiber)
    yield* Fiber.join(forgerFiber)

    const healedAt = world.now()
    // Liveness: within the bound, every clerk completes a write (a migration may hold a shard a while).
    const finals = yield* Effect.forEach(clients, (kv, i) =>
      Effect.gen(function* () {
        for (let attempt = 0; ; attempt++) {
          const exit = yield* Effect.exit(ledger.append(100 + i, kv, KEYS[i]!, `final${i}.${attempt};`))
          if (Exit.isSuccess(exit) || world.now() - healedAt > LIVENESS_BOUND_MS) return exit
        }
      }),
    )
    if (TRACE) {
      const latest = (yield* admin.query(-1)).num
      for (let num = 1; num <= latest; num++) {
        const c = yield* admin.query(num)
        console.log(`configuration ${num}: ${c.shards.join(",")} groups ${Object.keys(c.groups).join(",")}`)
      }
    }
    if (finals.some(Exit.isFailure)) {
      problem ??= `a clerk made no progress within ${LIVENESS_BOUND_MS} ms of healing: ${String(finals.find(Exit.isFailure))}\n${describeGroups()}`
      return
    }
    /**
     * Every member of every group (as its leader has them) at the latest configuration, which lists
     * each member group's members: the leaders told the controller of every change.
     */
    const converged = (latest: Config) =>
      GIDS.every((gid) => {
        const members = roster.members(gid)
        if (members === undefined) return false
        if (!members.every((r) => groupServers.get(r.address)?.machine().config.num === latest.num)) return false
        const listed = latest.groups[String(gid)]
        const addresses = members.map((r) => r.address)
        return listed === undefined || [...listed].sort().join() === addresses.sort().join()
      })
    let latest = yield* admin.query(-1)
    while (world.now() - healedAt < LIVENESS_BOUND_MS && !converged(latest)) {
      yield* Effect.sleep(100)
      checkServing()
      latest = yield* admin.query(-1).pipe(Effect.orElseSucceed(() => latest))
    }
    if (!converged(latest)) {
      problem ??=
        `groups did not reach configuration ${latest.num} (groups ${JSON.stringify(latest.groups)}) within ` +
        `${LIVENESS_BOUND_MS} ms of healing:\n${describeGroups()}`
      return
    }
    checkServing()
    const values = new Map<string, string>()
    for (const key of KEYS) values.set(key, yield* ledger.read(200, clients[0]!, key))
    for (const key of BIG_KEYS) yield* ledger.read(200, clients[0]!, key)
    const counters = yield* Effect.forEach(TRANSFER_KEYS, (key) => ledger.read(200, clients[0]!, key))
    problem ??= ledger.checkFinal(values)
    problem ??= ledger.checkTransfers(TRANSFER_KEYS, [counters[0]!, counters[1]!])
    if (problem === undefined && faults.chance(RETIRE_CHANCE)) yield* wipeHolder
  })

  const exit = world.run(program, FAULT_PHASE_MS + 5 * LIVENESS_BOUND_MS)
  if (Exit.isFailure(exit)) problem ??= `run failed: ${String(exit.cause).slice(0, 800)}`
  problem ??= ledger.checkHistory()
  const digest = new TraceDigest()
  digest.record("history", ledger.digest())
  digest.record("end", world.now(), network.totalDatagrams, network.totalBytes, world.clock.timersFired)
  return {
    ok: problem === undefined,
    ...(problem === undefined ? {} : { problem }),
    operations: ledger.operations,
    virtualMs: world.now(),
    digest: digest.value,
    faults: faultCounts,
    coordination: ledger.coordinationCounts(),
  }
}
