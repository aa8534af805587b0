/**
 * Proves that a shard group's member can be replaced while shards move and clerks run, without
 * restarting anything: a replica on a new address is added as a learner, caught up, promoted and
 * given the leadership, and the old one is removed and killed. The group's leader tells the
 * controller, whose configurations then name the new address; a shard given to the group before
 * the change (its configuration naming the old replicas) is still pulled by the new leader and
 * deleted at its source; clerks, one of them holding a configuration from before the change,
 * reach the group at its new address. Linearizable, every acknowledged append present exactly once.
 *
 * Each seed is one world in virtual time: 8 seeds per run from a random start; KV_SEED=<n> replays
 * one, KV_SWARM_SEEDS=<count> sets how many.
 */
import { test } from "bun:test"
import type { NodeId, RaftNodeShape } from "@kv/raft"
import type { RpcNodeShape } from "@kv/rpc"
import { type Config, makeControllerClient, shardOf } from "@kv/shardctrler"
import { runSwarmSeeds, SimWorld, SwarmLedger, type SwarmSeedResult } from "@kv/testkit"
import { Effect, Exit, Fiber } from "effect"
import { makeShardKvClient, makeShardKvServer, type ShardKvServerShape } from "../src/index.ts"
import { changeOnLeader, startControllers, waitUntil as waitFor } from "./support/worldScenario.ts"

const FILE = "packages/shardkv/test/membershipReplace.test.ts"
const N_SHARDS = 10
const KEYS = ["a", "b", "c", "d", "e", "f", "g", "h"]
/** Bound on each wait of the scenario, in virtual time. */
const BOUND_MS = 20_000

interface Outcome extends SwarmSeedResult {
  readonly clerkCallsToNewMember: number
  readonly configurations: number
}

/** Every client call's target, for "the clerks use the new address". */
const spyOnTargets = (rpc: RpcNodeShape, seen: (to: string) => void): RpcNodeShape => ({
  ...rpc,
  call: (to, method, request, options) => {
    seen(to)
    return rpc.call(to, method, request, options)
  },
  // The clerk asks each group through a view named for it.
  scoped: (scope) => spyOnTargets(rpc.scoped(scope), seen),
})

const runReplacement = (seed: number): Outcome => {
  const world = new SimWorld(seed)
  const { network } = world
  const random = world.stream("scenario")
  const ctrlPeers: Record<number, string> = { 1: "ctrl-1", 2: "ctrl-2", 3: "ctrl-3" }
  const controllers = Object.values(ctrlPeers)
  const peersOf = (gid: number): Record<number, string> => ({ 1: `g${gid}-1`, 2: `g${gid}-2`, 3: `g${gid}-3` })
  const servers = new Map<string, ShardKvServerShape>()
  const ledger = new SwarmLedger(KEYS)
  let problem: string | undefined
  let clerkCallsToNewMember = 0
  let configurations = 0
  /** `${configNum}:${shard}` → the group seen serving it. */
  const servedBy = new Map<string, number>()
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
          // Small enough that the new member is brought up by a snapshot in some runs.
          maxRaftStateBytes: 16 * 1024,
        }),
      )
      .pipe(Effect.map((server) => servers.set(peers[id]!, server)))

  const running = () => [...servers].filter(([address]) => world.isRunning(address))

  /** Two groups never serve one shard in one configuration. */
  const checkServing = () => {
    for (const [, server] of running()) {
      const machine = server.machine()
      machine.shardStates().forEach((state, shard) => {
        if (state !== "Serving" && state !== "AwaitingGc") return
        const key = `${machine.config.num}:${shard}`
        const other = servedBy.get(key)
        if (other === undefined) servedBy.set(key, server.gid)
        else if (other !== server.gid) {
          problem ??= `shard ${shard} served by ${other} and ${server.gid} in configuration ${machine.config.num}`
        }
      })
    }
  }

  const waitUntil = (what: string, done: () => boolean) => waitFor(world, BOUND_MS, what, done, checkServing)

  const leaderOf = (gid: number): RaftNodeShape | undefined =>
    running()
      .map(([, server]) => server)
      .find((server) => server.gid === gid && server.rsm.raft.status().role === "leader")?.rsm.raft

  const change = (gid: number, what: string, make: (raft: RaftNodeShape) => Effect.Effect<unknown, unknown>) =>
    changeOnLeader(world, BOUND_MS, () => leaderOf(gid), what, make)

  const program = Effect.gen(function* () {
    yield* startControllers(world, ctrlPeers, N_SHARDS, seed)
    for (const gid of [100, 101]) for (const id of [1, 2, 3]) yield* start(gid, id, peersOf(gid))
    network.setMaxDelay(5)
    const admin = yield* makeControllerClient(yield* world.client("admin"), { controllers, deadlineMs: 5_000 })
    yield* admin.join({ 100: Object.values(peersOf(100)), 101: Object.values(peersOf(101)) })

    const clerkRandom = world.stream("clerks")
    const newClerk = (name: string) =>
      Effect.gen(function* () {
        const rpc = spyOnTargets(yield* world.client(name), (to) => {
          if (to === NEW) clerkCallsToNewMember++
        })
        return yield* makeShardKvClient(rpc, { controllers, deadlineMs: 4_000 })
      })
    let clerksOn = true
    const clerks = yield* Effect.forEach([1, 2, 3], (n) => newClerk(`clerk-${n}`))
    const clerkFibers = yield* Effect.forEach(clerks, (kv, i) =>
      Effect.forkChild(ledger.clerk(i + 1, kv, clerkRandom, () => clerksOn, { maxThinkMs: 40 })),
    )
    // Shards move between the groups before the change and after it; during it, one is in motion.
    const moveShards = Effect.forkChild(
      Effect.forever(
        Effect.gen(function* () {
          yield* Effect.sleep(150 + random.nextInt(250))
          yield* admin.move(random.nextInt(N_SHARDS), random.chance(0.5) ? 100 : 101).pipe(Effect.ignore)
        }),
      ),
    )
    let mover = yield* moveShards
    // A clerk that learns the configuration now and sleeps through the whole change.
    const sleeper = yield* newClerk("sleeper")
    const sleeperKey = KEYS[0]!
    yield* ledger.append(9, sleeper, sleeperKey, "9.0;")
    yield* Effect.sleep(500 + random.nextInt(500))

    // Group 101 is cut off while a shard it holds is given to group 100: that configuration names
    // group 100's old replicas, and the shard can only be pulled once the new member leads.
    yield* Fiber.interrupt(mover)
    const group101 = Object.values(peersOf(101))
    network.partition([group101, [...controllers, ...Object.values(peersOf(100)), NEW, "admin", "sleeper"]])
    let latest = yield* admin.query(-1)
    const shard = Math.max(0, latest.shards.indexOf(101))
    if (latest.shards[shard] !== 101) yield* admin.move(shard, 101)
    yield* admin.move(shard, 100)
    const givenAt = (yield* admin.query(-1)).num

    // Replace g100-3 by g100-4: learner, caught up, promoted, leader; g100-3 removed and killed.
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

    const wanted = ["g100-1", "g100-2", NEW]
    const listsNew = (config: Config) => (config.groups["100"] ?? []).join() === wanted.join()
    let announced: Config | undefined
    const announcedAt = world.now()
    while (announced === undefined) {
      const config = yield* admin.query(-1)
      if (listsNew(config)) announced = config
      else if (world.now() - announcedAt > BOUND_MS) {
        return yield* Effect.fail(`the controller never got group 100's new members: ${JSON.stringify(config.groups)}`)
      } else yield* Effect.sleep(50)
    }
    const before = yield* admin.query(announced.num - 1)
    if (before.shards.join() !== announced.shards.join()) {
      problem ??= `the configuration with the new members moved shards: ${before.shards} -> ${announced.shards}`
    }

    network.heal()
    latest = yield* admin.query(-1)
    const healedNum = latest.num
    yield* waitUntil(`every running replica at configuration ${healedNum}`, () =>
      running().every(([, server]) => server.machine().config.num >= healedNum),
    )
    yield* waitUntil(`group 100 pulled shard ${shard} given at ${givenAt}, and group 101 deleted it`, () =>
      running().every(([address, server]) =>
        address.startsWith("g100")
          ? server.machine().hasInstalled(givenAt, shard)
          : server.machine().deleteStatus(givenAt, shard) === "done",
      ),
    )

    // Shards move again and the clerks go on a while with the new members; then the groups settle.
    mover = yield* moveShards
    yield* Effect.sleep(1_500 + random.nextInt(1_000))
    yield* Fiber.interrupt(mover)
    clerksOn = false
    latest = yield* admin.query(-1)
    const finalNum = latest.num
    yield* waitUntil(`every running replica at configuration ${finalNum}`, () =>
      running().every(([, server]) => server.machine().config.num >= finalNum),
    )
    yield* Effect.forEach(clerkFibers, Fiber.join)
    const sleeperCalls = clerkCallsToNewMember
    // The sleeper's configuration is from before the change: it still finds group 100.
    const key100 = KEYS.find((k) => latest.shards[shardOf(k, N_SHARDS)] === 100) ?? sleeperKey
    yield* ledger.append(9, sleeper, key100, "9.1;")
    yield* Effect.forEach(clerks, (kv, i) => ledger.append(i + 1, kv, KEYS[i]!, `final${i};`))
    if (clerkCallsToNewMember === 0) problem ??= "no clerk ever called the new member"
    if (clerkCallsToNewMember === sleeperCalls && leaderOf(100)?.id === 4) {
      problem ??= "the clerk with an old configuration did not reach the group's new leader"
    }
    const values = new Map<string, string>()
    for (const key of KEYS) values.set(key, yield* ledger.read(10, clerks[0]!, key))
    problem ??= ledger.checkFinal(values)
    const end = yield* admin.query(-1)
    configurations = end.num
    if (!listsNew(end)) problem ??= `the latest configuration lists ${end.groups["100"]} for group 100`
  })

  const exit = world.run(program, 10 * BOUND_MS)
  if (Exit.isFailure(exit)) problem ??= `run failed: ${String(exit.cause).slice(0, 1_000)}`
  problem ??= ledger.checkHistory()
  return {
    ok: problem === undefined,
    ...(problem === undefined ? {} : { problem }),
    operations: ledger.operations,
    virtualMs: world.now(),
    clerkCallsToNewMember,
    configurations,
  }
}

test("a shard group's member is replaced while shards move: the controller, the other group and the clerks follow", () => {
  let calls = 0
  let configurations = 0
  runSwarmSeeds("member replacement", FILE, 8, (seed) => {
    const outcome = runReplacement(seed)
    calls += outcome.clerkCallsToNewMember
    configurations += outcome.configurations
    return outcome
  })
  console.log(`member replacement: ${configurations} configurations, ${calls} clerk calls to the new members`)
}, 60_000)
