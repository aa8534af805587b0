/**
 * The kvraft swarm: each seed builds a world (virtual clock, seeded network and randomness) with a
 * real group of three servers and three concurrent clerks, then chooses its own faults for a
 * while: partitions, loss, duplication, delay, crashes and restarts on the replicas' disks (some
 * crashes inside a durable write, which is then kept whole or lost whole), a replica restarted with
 * its wall clock hours ahead or behind, or whose clock jumps hours while it runs, and membership
 * changes through the leader (a new member added as a learner on a new address, promoted, a voter
 * removed; ids are never reused). The clerks also race compare-and-swaps on one key, and transfers
 * between two counters in transactions that compare both counters' versions or mod revisions. After
 * the faults heal, every clerk must finish an operation within a bound (liveness); the history must
 * be linearizable (a transaction one atomic step over both counters), every acknowledged append
 * present exactly once and none twice, the counters still sum to their total, no active session
 * expired, and no term ever had two leaders (sampled every 10 ms of virtual time). A failing seed
 * prints the command that replays it.
 *
 * A second run gives the disks 1–12 ms of virtual time per flush (KV_SIM_FLUSH_MS), so inputs step
 * Raft while a write is in flight, as on a real disk.
 *
 * KV_SEED=<n> runs that one seed; KV_SWARM_SEEDS=<count> sets how many seeds a run covers.
 */
import { describe, expect, test } from "bun:test"
import type { NodeId } from "@kv/raft"
import type { Rng } from "@kv/sim"
import {
  addCoordinationCounts,
  type CoordinationCounts,
  runSwarmSeeds,
  SimWorld,
  SwarmLedger,
  type SwarmSeedResult,
  withSlowFlushes,
} from "@kv/testkit"
import { Effect, Exit, Fiber } from "effect"
import { type KvServerShape, makeKvClient, makeKvServer } from "../src/index.ts"

const FILE = "packages/kvraft/test/swarm.test.ts"
// Short runs with dense faults: 1,000 seeds per CI run in about a minute.
const FAULT_PHASE_MS = 4_000
const LIVENESS_BOUND_MS = 30_000
const KEYS = ["a", "b", "c"]
const CAS_KEY = "lock"
const TRANSFER_KEYS = ["acct:x", "acct:y"] as const

const pick = <A>(rng: Rng, items: readonly A[]): A => items[rng.nextInt(items.length)]!

/** Across the seeds of one test: membership changes proposed, and seeds that end with another membership. */
const coverage = { proposed: 0, seedsWithNewMembership: 0 }
/** Across the seeds of one test: CAS applied and rejected, transfer transactions succeeded and failed. */
let coordination: CoordinationCounts = { casApplied: 0, casRejected: 0, txnSucceeded: 0, txnFailed: 0 }

const runSeed = (seed: number): SwarmSeedResult => {
  const world = new SimWorld(seed)
  const { network } = world
  const faults = world.stream("faults")
  const clientRandom = world.stream("clients")
  const peers: Record<number, string> = { 1: "kv-1", 2: "kv-2", 3: "kv-3" }
  /** Every replica that ever ran, bootstrap members first; a removed one keeps running (it stops taking part). */
  const replicas = new Map<number, string>(Object.entries(peers).map(([id, a]) => [Number(id), a]))
  const addresses = Object.values(peers)
  const joined = new Set<number>()
  let nextId = 4
  let changes = 0
  const servers = new Map<string, KvServerShape>()
  const ledger = new SwarmLedger(KEYS)
  let problem: string | undefined

  const startServer = (id: number) =>
    world
      .start(
        replicas.get(id)!,
        makeKvServer({ id: id as NodeId, peers, seed: seed * 7 + id, tickMs: 10, join: joined.has(id) }),
      )
      .pipe(Effect.map((server) => servers.set(replicas.get(id)!, server)))

  /** One membership step through whichever replica leads: add a learner, promote one, or remove a voter. */
  const changeMembership = Effect.gen(function* () {
    const leader = [...servers.entries()].find(
      ([address, server]) => world.isRunning(address) && server.rsm.raft.status().role === "leader",
    )?.[1]
    if (leader === undefined) return
    const members = leader.rsm.raft.status().members
    const voters = members.filter((m) => m.role !== "learner").map((m) => m.id)
    const learners = members.filter((m) => m.role === "learner").map((m) => m.id)
    // Lean towards finishing what earlier steps began: promote a learner, then remove a voter.
    let change: Effect.Effect<unknown, unknown>
    if (learners.length > 0 && faults.chance(0.6)) {
      change = leader.rsm.raft.promote(pick(faults, learners) as NodeId)
    } else if (voters.length > 3 && faults.chance(0.6)) {
      change = leader.rsm.raft.removeMember(pick(faults, voters) as NodeId)
    } else if (members.length < 6) {
      const id = nextId++
      const address = `kv-${id}`
      replicas.set(id, address)
      joined.add(id)
      addresses.push(address)
      yield* startServer(id)
      change = leader.rsm.raft.addLearner(id as NodeId, address)
    } else {
      return
    }
    changes++
    // The change commits (or fails: leader lost, one already in flight) on its own time.
    yield* Effect.forkChild(Effect.ignore(change))
  })

  /** Election safety, sampled every 10 ms of virtual time: at most one leader per term, ever. */
  const leaderOfTerm = new Map<number, number>()
  const watchLeaders = Effect.gen(function* () {
    for (;;) {
      for (const [address, server] of servers) {
        if (!world.isRunning(address)) continue
        const status = server.rsm.raft.status()
        if (status.role !== "leader") continue
        const known = leaderOfTerm.get(status.term)
        if (known === undefined) leaderOfTerm.set(status.term, status.id)
        else if (known !== status.id) problem ??= `two leaders in term ${status.term}: ${known} and ${status.id}`
      }
      yield* Effect.sleep(10)
    }
  })

  const faultInjector = Effect.gen(function* () {
    while (world.now() < FAULT_PHASE_MS) {
      yield* Effect.sleep(100 + faults.nextInt(500))
      const dice = faults.nextInt(100)
      if (dice < 20) {
        world.partitionRandomly(addresses, faults)
      } else if (dice < 40) {
        network.heal()
      } else if (dice < 55) {
        const running = addresses.filter((a) => world.isRunning(a))
        if (running.length > 0) {
          const victim = pick(faults, running)
          if (faults.chance(0.4)) world.crashDuringNextSave(victim)
          else yield* world.crash(victim)
        }
      } else if (dice < 75) {
        const down = Object.entries(peers).filter(([, a]) => !world.isRunning(a))
        if (down.length > 0) {
          const [id, address] = pick(faults, down)
          // Sometimes it comes back with its wall clock hours ahead or behind.
          if (faults.chance(0.3)) {
            world.skewMs.set(address, (faults.chance(0.5) ? 1 : -1) * (1 + faults.nextInt(3)) * 3_600_000)
          }
          yield* startServer(Number(id))
        }
      } else if (dice < 80) {
        const running = addresses.filter((a) => world.isRunning(a))
        if (running.length > 0) {
          world.jumpClock(pick(faults, running), (faults.chance(0.5) ? 1 : -1) * (1 + faults.nextInt(3)) * 3_600_000)
        }
      } else if (dice < 88) {
        yield* changeMembership
      } else if (dice < 90) {
        network.setDropRate(faults.nextInt(3) * 0.05)
        network.setDuplicateRate(faults.nextInt(2) * 0.05)
      } else {
        network.setMaxDelay(1 + faults.nextInt(30))
      }
    }
    // Heal: every replica up, every link whole and clean.
    world.healNetwork()
    world.disarmSaveCrashes()
    for (const [id, address] of replicas) if (!world.isRunning(address)) yield* startServer(id)
  })

  const program = Effect.gen(function* () {
    for (const id of Object.keys(peers)) yield* startServer(Number(id))
    yield* Effect.forkChild(watchLeaders)
    network.setMaxDelay(5)
    const inFaults = () => world.now() < FAULT_PHASE_MS
    const clients = yield* Effect.forEach([1, 2, 3], (n) =>
      Effect.gen(function* () {
        return yield* makeKvClient(yield* world.client(`clerk-${n}`), { servers: addresses, deadlineMs: 3_000 })
      }),
    )
    // Appends and reads a little slower than they could, so the transfers below fit in the run's time.
    const clerks = yield* Effect.forEach(clients, (kv, i) =>
      Effect.forkChild(ledger.clerk(i + 1, kv, clientRandom, inFaults, { maxThinkMs: 110 })),
    )
    // Beside them, the same clients race optimistic updates (read, then CAS) on a key of their own.
    const casClerks = yield* Effect.forEach(clients, (kv, i) =>
      Effect.forkChild(ledger.casClerk(i + 1, kv, CAS_KEY, clientRandom, inFaults, 400)),
    )
    // And transfers between two counters, each a transaction over both.
    const transferClerks = yield* Effect.forEach(clients, (kv, i) =>
      Effect.forkChild(ledger.transferClerk(i + 1, kv, TRANSFER_KEYS, clientRandom, inFaults, 600)),
    )
    yield* faultInjector
    yield* Effect.forEach([...clerks, ...casClerks, ...transferClerks], Fiber.join)
    // Liveness: healed, every clerk completes a write within the bound.
    const healedAt = world.now()
    const finals = yield* Effect.forEach(clients, (kv, i) =>
      Effect.gen(function* () {
        for (let attempt = 0; ; attempt++) {
          const exit = yield* Effect.exit(ledger.append(100 + i, kv, "a", `final${i}.${attempt};`))
          if (Exit.isSuccess(exit) || world.now() - healedAt > LIVENESS_BOUND_MS) return exit
        }
      }),
    )
    if (finals.some(Exit.isFailure) || world.now() - healedAt > LIVENESS_BOUND_MS) {
      problem = `no progress within ${LIVENESS_BOUND_MS} ms after healing`
      return
    }
    const values = new Map<string, string>()
    for (const key of KEYS) values.set(key, yield* clients[0]!.get(key))
    const counters = yield* Effect.forEach(TRANSFER_KEYS, (key) => clients[0]!.get(key))
    problem ??= ledger.checkTransfers(TRANSFER_KEYS, [counters[0]!, counters[1]!])
    coverage.proposed += changes
    const finalMembers = [...servers.values()]
      .find((server) => server.rsm.raft.status().role === "leader")
      ?.rsm.raft.status()
      .members.map((m) => `${m.id}:${m.role === "learner" ? "learner" : "voter"}`)
      .sort()
      .join(",")
    if (finalMembers !== undefined && finalMembers !== "1:voter,2:voter,3:voter") coverage.seedsWithNewMembership++
    problem ??= ledger.checkFinal(values)
    // Every clerk was active throughout, far within the session lifetime: no session may expire,
    // whatever any replica's clock said.
    for (const [address, server] of servers) {
      const expired = server.gauges().kv_client_sessions_expired ?? 0
      if (world.isRunning(address) && expired > 0) problem ??= `${address} expired ${expired} active client sessions`
    }
  })

  const exit = world.run(program, FAULT_PHASE_MS + 5 * LIVENESS_BOUND_MS)
  if (Exit.isFailure(exit)) problem ??= `run failed: ${String(exit.cause).slice(0, 500)}`
  problem ??= ledger.checkHistory()
  coordination = addCoordinationCounts(coordination, ledger.coordinationCounts())
  return {
    ok: problem === undefined,
    ...(problem === undefined ? {} : { problem }),
    operations: ledger.operations,
    virtualMs: world.now(),
    digest: `${ledger.digest()}@${world.now()}/${network.totalDatagrams}/${world.clock.timersFired}`,
  }
}

describe("kvraft swarm in the seeded world", () => {
  test("every seed: linearizable, nothing lost or doubled, no active session expired, live after healing", () => {
    runSwarmSeeds("kvraft swarm", FILE, 1_000, runSeed)
    console.log(
      `kvraft swarm: ${coverage.proposed} membership changes proposed, ${coverage.seedsWithNewMembership} seeds ended with another membership, ` +
        `${coordination.casApplied} CAS applied and ${coordination.casRejected} rejected, ` +
        `${coordination.txnSucceeded} transfer transactions succeeded and ${coordination.txnFailed} failed`,
    )
    // The runs must change memberships, or they prove nothing about changes under faults.
    const seeds = Number(process.env.KV_SWARM_SEEDS ?? 1_000)
    if (process.env.KV_SEED === undefined) expect(coverage.seedsWithNewMembership).toBeGreaterThan(seeds / 10)
    // Concurrent CAS must both win and lose, or the histories prove little about them.
    if (process.env.KV_SEED === undefined)
      expect(Math.min(coordination.casApplied, coordination.casRejected)).toBeGreaterThan(seeds)
    // Likewise racing transfers.
    if (process.env.KV_SEED === undefined)
      expect(Math.min(coordination.txnSucceeded, coordination.txnFailed)).toBeGreaterThan(seeds / 2)
  }, 600_000)

  test("every seed with disks taking 1–12 ms per flush: the same checks while inputs step Raft during writes", () => {
    withSlowFlushes(12, (replayEnv) => runSwarmSeeds("kvraft swarm, slow flushes", FILE, 200, runSeed, replayEnv))
  }, 600_000)

  test("one seed twice gives the same run", () => {
    expect(runSeed(4242)).toEqual(runSeed(4242))
  })
})
