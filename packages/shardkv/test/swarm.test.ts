/**
 * The sharded swarm: each seed builds a world with a real controller (3 replicas), groups 100–102
 * (3 replicas each) and three concurrent clerks, then chooses its own faults for a while:
 * partitions, loss, duplication, delay, replica crashes and restarts (some with clocks hours off),
 * and admin sequences (join, leave, move, every group leaving and one coming back). After the faults
 * heal, every clerk must finish an operation and every group reach the latest configuration within a
 * bound. Checked: at most one group serves a shard in any configuration (sampled throughout), the
 * history is linearizable, every acknowledged append is present exactly once and none twice.
 *
 * KV_SEED=<n> runs that one seed; KV_SWARM_SEEDS=<count> sets how many seeds a run covers.
 */
import { describe, test } from "bun:test"
import type { NodeId } from "@kv/raft"
import { makeControllerClient, makeControllerServer } from "@kv/shardctrler"
import type { Rng } from "@kv/sim"
import { runSwarmSeeds, SimWorld, SwarmLedger, type SwarmSeedResult } from "@kv/testkit"
import { Effect, Exit, Fiber } from "effect"
import { makeShardKvClient, makeShardKvServer, type ShardKvServerShape } from "../src/index.ts"

const FILE = "packages/shardkv/test/swarm.test.ts"
const N_SHARDS = 10
const FAULT_PHASE_MS = 20_000
const LIVENESS_BOUND_MS = 60_000
const KEYS = ["a", "b", "c", "d", "e", "f"]
const GIDS = [100, 101, 102]

const runSeed = (seed: number): SwarmSeedResult => {
  const world = new SimWorld(seed)
  const { network } = world
  const faults = world.stream("faults")
  const clientRandom = world.stream("clients")
  const ctrlPeers: Record<number, string> = { 1: "ctrl-1", 2: "ctrl-2", 3: "ctrl-3" }
  const controllers = Object.values(ctrlPeers)
  const groupPeers = new Map(GIDS.map((gid) => [gid, { 1: `g${gid}-1`, 2: `g${gid}-2`, 3: `g${gid}-3` }]))
  const groupServers = new Map<string, ShardKvServerShape>()
  const ledger = new SwarmLedger(KEYS)
  /** `${configNum}:${shard}` → the group seen serving it. */
  const servedBy = new Map<string, number>()
  let problem: string | undefined
  const pick = <A>(rng: Rng, items: readonly A[]): A => items[rng.nextInt(items.length)]!

  const startReplica = (gid: number, id: number) => {
    const peers = groupPeers.get(gid)!
    const address = peers[id as 1 | 2 | 3]
    return world
      .start(
        address,
        makeShardKvServer({
          gid,
          id: id as NodeId,
          peers,
          controllers,
          nShards: N_SHARDS,
          seed: seed * 13 + gid + id,
          tickMs: 10,
        }),
      )
      .pipe(Effect.map((server) => groupServers.set(address, server)))
  }
  const replicas = GIDS.flatMap((gid) => [1, 2, 3].map((id) => ({ gid, id, address: `g${gid}-${id}` })))

  /** Two groups never serve one shard in one configuration. */
  const checkServing = () => {
    for (const { gid, address } of replicas) {
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

  const program = Effect.gen(function* () {
    for (const [id, address] of Object.entries(ctrlPeers)) {
      yield* world.start(
        address,
        makeControllerServer({
          id: Number(id) as NodeId,
          peers: ctrlPeers,
          nShards: N_SHARDS,
          seed: seed + Number(id),
        }),
      )
    }
    for (const { gid, id } of replicas) yield* startReplica(gid, id)
    network.setMaxDelay(5)
    const admin = yield* makeControllerClient(yield* world.client("admin"), { controllers, deadlineMs: 5_000 })
    const joined = new Set<number>()
    const join = (gid: number) =>
      admin.join({ [String(gid)]: Object.values(groupPeers.get(gid)!) }).pipe(
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
    const clients = yield* Effect.forEach([1, 2, 3], (n) =>
      Effect.gen(function* () {
        return yield* makeShardKvClient(yield* world.client(`clerk-${n}`), { controllers, deadlineMs: 4_000 })
      }),
    )
    const clerks = yield* Effect.forEach(clients, (kv, i) =>
      Effect.forkChild(ledger.clerk(i + 1, kv, clientRandom, inFaults)),
    )
    while (inFaults()) {
      yield* Effect.sleep(200 + faults.nextInt(1_500))
      checkServing()
      const dice = faults.nextInt(100)
      const everyone = [...controllers, ...replicas.map((r) => r.address)]
      if (dice < 12) {
        world.partitionRandomly(everyone, faults)
      } else if (dice < 24) {
        network.heal()
      } else if (dice < 36) {
        const running = replicas.filter((r) => world.isRunning(r.address))
        if (running.length > 0) yield* world.crash(pick(faults, running).address)
      } else if (dice < 50) {
        const down = replicas.filter((r) => !world.isRunning(r.address))
        if (down.length > 0) {
          const r = pick(faults, down)
          if (faults.chance(0.2)) world.skewMs.set(r.address, (faults.chance(0.5) ? 1 : -1) * 2 * 3_600_000)
          yield* startReplica(r.gid, r.id)
        }
      } else if (dice < 60) {
        network.setDropRate(faults.nextInt(3) * 0.05)
        network.setDuplicateRate(faults.nextInt(2) * 0.05)
        network.setMaxDelay(1 + faults.nextInt(20))
      } else if (dice < 72) {
        const out = GIDS.filter((g) => !joined.has(g))
        if (out.length > 0) yield* join(pick(faults, out))
      } else if (dice < 80) {
        if (joined.size > 0) yield* leave([pick(faults, [...joined])])
      } else if (dice < 88) {
        if (joined.size > 0) yield* admin.move(faults.nextInt(N_SHARDS), pick(faults, [...joined])).pipe(Effect.ignore)
      } else if (dice < 92) {
        // Every group leaves, and one comes back.
        if (joined.size > 0) yield* leave([...joined])
        yield* join(pick(faults, GIDS))
      }
    }
    // Heal: every replica up, every link whole and clean, at least one group serving.
    world.healNetwork()
    for (const r of replicas) if (!world.isRunning(r.address)) yield* startReplica(r.gid, r.id)
    if (joined.size === 0) yield* join(GIDS[0]!)
    yield* Effect.forEach(clerks, Fiber.join)

    const healedAt = world.now()
    const finals = yield* Effect.forEach(clients, (kv, i) =>
      Effect.exit(ledger.append(100 + i, kv, KEYS[i]!, `final${i};`)),
    )
    if (finals.some(Exit.isFailure)) {
      problem ??= `a clerk made no progress after healing: ${String(finals.find(Exit.isFailure))}`
      return
    }
    const latest = (yield* admin.query(-1)).num
    while (
      world.now() - healedAt < LIVENESS_BOUND_MS &&
      !replicas.every((r) => groupServers.get(r.address)!.machine().config.num === latest)
    ) {
      yield* Effect.sleep(100)
      checkServing()
    }
    if (!replicas.every((r) => groupServers.get(r.address)!.machine().config.num === latest)) {
      problem ??= `groups did not reach configuration ${latest} within ${LIVENESS_BOUND_MS} ms of healing`
      return
    }
    checkServing()
    const values = new Map<string, string>()
    for (const key of KEYS) values.set(key, yield* clients[0]!.get(key))
    problem ??= ledger.checkFinal(values)
  })

  const exit = world.run(program, FAULT_PHASE_MS + 5 * LIVENESS_BOUND_MS)
  if (Exit.isFailure(exit)) problem ??= `run failed: ${String(exit.cause).slice(0, 800)}`
  problem ??= ledger.checkHistory()
  return {
    ok: problem === undefined,
    ...(problem === undefined ? {} : { problem }),
    operations: ledger.operations,
    virtualMs: world.now(),
  }
}

describe("sharded swarm in the seeded world", () => {
  test("every seed: one group per shard, linearizable, nothing lost or doubled, live after healing", () => {
    runSwarmSeeds("sharded swarm", FILE, 10, runSeed)
  }, 600_000)
})
