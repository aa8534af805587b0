/**
 * Proves that a group which left while it was still pulling a shard, and replaced a member before
 * finishing, completes the migration: its new leader (an address no configuration names, since the
 * group is in none after it left) pulls the shard from its holder, installs it, and hands it on to
 * the group the controller gave it to. The new list reaches the holder through the controller's
 * record of departed groups. Every acknowledged append is present exactly once, linearizable.
 *
 * Each seed is one world in virtual time: 6 seeds per run from a random start; KV_SEED=<n> replays
 * one, KV_SWARM_SEEDS=<count> sets how many.
 */
import { test } from "bun:test"
import type { NodeId, RaftNodeShape } from "@kv/raft"
import { makeControllerClient, shardOf } from "@kv/shardctrler"
import { runSwarmSeeds, SimWorld, SwarmLedger, type SwarmSeedResult } from "@kv/testkit"
import { Effect, Exit, Fiber } from "effect"
import { makeShardKvClient, makeShardKvServer, type ShardKvServerShape } from "../src/index.ts"
import { changeOnLeader, startControllers, waitUntil as waitFor } from "./support/worldScenario.ts"

const FILE = "packages/shardkv/test/departedGroupMembers.test.ts"
const N_SHARDS = 10
const KEYS = ["a", "b", "c", "d", "e", "f", "g", "h"]
/** Bound on each wait of the scenario, in virtual time. */
const BOUND_MS = 20_000

const runDeparture = (seed: number): SwarmSeedResult => {
  const world = new SimWorld(seed)
  const { network } = world
  const ctrlPeers: Record<number, string> = { 1: "ctrl-1", 2: "ctrl-2", 3: "ctrl-3" }
  const controllers = Object.values(ctrlPeers)
  const peersOf = (gid: number): Record<number, string> => ({ 1: `g${gid}-1`, 2: `g${gid}-2`, 3: `g${gid}-3` })
  const servers = new Map<string, ShardKvServerShape>()
  const ledger = new SwarmLedger(KEYS)
  let problem: string | undefined
  const NEW = "g100-4"

  const start = (gid: number, id: number, peers: Record<number, string>, join = false) =>
    world
      .start(
        peers[id]!,
        makeShardKvServer({
          gid,
          id: id as NodeId,
          peers,
          join,
          controllers,
          nShards: N_SHARDS,
          seed: seed * 31 + gid + id,
          tickMs: 10,
        }),
      )
      .pipe(Effect.map((server) => servers.set(peers[id]!, server)))

  const running = () => [...servers].filter(([address]) => world.isRunning(address)).map(([, server]) => server)

  const waitUntil = (what: string, done: () => boolean) => waitFor(world, BOUND_MS, what, done)

  const leaderOf = (gid: number): RaftNodeShape | undefined =>
    running().find((server) => server.gid === gid && server.rsm.raft.status().role === "leader")?.rsm.raft

  const change = (gid: number, what: string, make: (raft: RaftNodeShape) => Effect.Effect<unknown, unknown>) =>
    changeOnLeader(world, BOUND_MS, () => leaderOf(gid), what, make)

  const program = Effect.gen(function* () {
    yield* startControllers(world, ctrlPeers, N_SHARDS, seed)
    for (const gid of [100, 101]) for (const id of [1, 2, 3]) yield* start(gid, id, peersOf(gid))
    network.setMaxDelay(5)
    const admin = yield* makeControllerClient(yield* world.client("admin"), { controllers, deadlineMs: 5_000 })
    yield* admin.join({ 100: Object.values(peersOf(100)), 101: Object.values(peersOf(101)) })

    // Appends to every key, so the shard that moves carries acknowledged data.
    const clerkRandom = world.stream("clerks")
    const clerks = yield* Effect.forEach([1, 2], (n) =>
      Effect.flatMap(world.client(`clerk-${n}`), (rpc) => makeShardKvClient(rpc, { controllers, deadlineMs: 4_000 })),
    )
    let clerksOn = true
    const clerkFibers = yield* Effect.forEach(clerks, (kv, i) =>
      Effect.forkChild(ledger.clerk(i + 1, kv, clerkRandom, () => clerksOn, { maxThinkMs: 40 })),
    )
    yield* Effect.sleep(800)

    // Group 101 is cut off while a shard it holds (one the clerks write) is given to group 100,
    // and group 100 leaves at once: it must still pull that shard, then hand it back to 101.
    const shard = shardOf(KEYS[0]!, N_SHARDS)
    if ((yield* admin.query(-1)).shards[shard] !== 101) yield* admin.move(shard, 101)
    yield* waitUntil("group 101 serves the shard", () =>
      running().some((s) => s.gid === 101 && s.machine().shardStates()[shard] === "Serving"),
    )
    const group101 = Object.values(peersOf(101))
    network.partition([group101, [...controllers, ...Object.values(peersOf(100)), NEW, "admin", "clerk-1", "clerk-2"]])
    yield* admin.move(shard, 100)
    const givenAt = (yield* admin.query(-1)).num
    yield* waitUntil("group 100 pulls the shard", () =>
      running().some((s) => s.gid === 100 && s.machine().config.num === givenAt),
    )
    yield* admin.leave([100])

    // While it pulls, group 100 replaces g100-3 by g100-4, which leads from then on.
    yield* start(100, 4, { ...peersOf(100), 4: NEW }, true)
    yield* change(100, "add g100-4 as a learner", (raft) => raft.addLearner(4 as NodeId, NEW))
    yield* waitUntil("g100-4 caught up", () => {
      const lag = leaderOf(100)
        ?.status()
        .members.find((m) => m.id === 4)?.lag
      return lag !== undefined && lag >= 0 && lag < 5
    })
    yield* change(100, "promote g100-4", (raft) => raft.promote(4 as NodeId))
    yield* change(100, "hand the leadership to g100-4", (raft) =>
      raft.id === 4 ? Effect.void : raft.transferLeadership(4 as NodeId).pipe(Effect.andThen(Effect.sleep(200))),
    )
    yield* change(100, "remove g100-3", (raft) => raft.removeMember(3 as NodeId))
    yield* world.crash("g100-3")

    network.heal()
    yield* waitUntil(`group 100 pulled shard ${shard} given at ${givenAt}`, () =>
      running().every((s) => s.gid !== 100 || s.machine().hasInstalled(givenAt, shard)),
    )
    const latest = (yield* admin.query(-1)).num
    yield* waitUntil(`every running replica at configuration ${latest}, group 101 serving the shard`, () =>
      running().every(
        (s) => s.machine().config.num >= latest && (s.gid !== 101 || s.machine().shardStates()[shard] === "Serving"),
      ),
    )
    yield* waitUntil("group 100 holds nothing", () =>
      running().every(
        (s) =>
          s.gid !== 100 ||
          s
            .machine()
            .shardStates()
            .every((state) => state === "Absent"),
      ),
    )
    yield* Effect.sleep(500)
    clerksOn = false
    yield* Effect.forEach(clerkFibers, Fiber.join)
    const values = new Map<string, string>()
    for (const key of KEYS) values.set(key, yield* ledger.read(10, clerks[0]!, key))
    problem ??= ledger.checkFinal(values)
  })

  const exit = world.run(program, 10 * BOUND_MS)
  if (Exit.isFailure(exit)) problem ??= `run failed: ${String(exit.cause).slice(0, 1_000)}`
  problem ??= ledger.checkHistory()
  return {
    ok: problem === undefined,
    ...(problem === undefined ? {} : { problem }),
    operations: ledger.operations,
    virtualMs: world.now(),
  }
}

test("a group that left while pulling, and replaced its leader meanwhile, finishes the migration", () => {
  runSwarmSeeds("departed group members", FILE, 6, (seed) => runDeparture(seed))
}, 60_000)
