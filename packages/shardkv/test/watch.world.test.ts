/**
 * Proves that sharded watches deliver, per shard, exactly the committed changes of their range in
 * the shard's revision order, with no gap, no repeat and no going back, while shards move between
 * groups (joins, leaves, moves), replicas crash (leaders too) and the network partitions. Each seed
 * builds a seeded world with a controller, three groups of three, two writers (puts, deletes,
 * hash-tagged transactions, unique values) and four watchers (a key, a hash-tagged prefix of one
 * shard, a prefix over every shard, everything); after healing, one write per shard commits in
 * the healed terms, every watcher must reach each shard's final revision, and the watch checker
 * compares each watcher's events of each shard with that shard's own history (which moved with
 * the shard), itself checked against the shard's final store and the writers' values.
 *
 * KV_SEED=<n> replays one seed; KV_SWARM_SEEDS=<count> sets how many seeds a run covers.
 */
import { describe, expect, test } from "bun:test"
import type { KvClientShape, KvStateMachine, WatchItem, WatchTarget } from "@kv/kvraft"
import type { NodeId } from "@kv/raft"
import { makeControllerClient, shardOf } from "@kv/shardctrler"
import type { Rng } from "@kv/sim"
import {
  type CheckedEntry,
  checkStoreHistory,
  checkWatcher,
  runSwarmSeeds,
  SimWorld,
  type SwarmSeedResult,
  type WatchObservation,
} from "@kv/testkit"
import { Effect, Exit, Fiber, Stream } from "effect"
import { makeShardKvClient, makeShardKvServer, type ShardKvServerShape } from "../src/index.ts"
import { startControllers } from "./support/worldScenario.ts"

const FILE = "packages/shardkv/test/watch.world.test.ts"
const N_SHARDS = 4
const FAULT_PHASE_MS = 5_000
const CATCH_UP_BOUND_MS = 40_000
const KEYS = ["a", "b", "c", "dir/x", "dir/y", "{t}.1", "{t}.2", "{t}.3"]
const GIDS = [100, 101, 102]
const ctrlPeers: Record<number, string> = { 1: "ctrl-1", 2: "ctrl-2", 3: "ctrl-3" }
const controllers = Object.values(ctrlPeers)
const groupPeers = (gid: number): Record<number, string> => ({ 1: `g${gid}-1`, 2: `g${gid}-2`, 3: `g${gid}-3` })
/** One key per shard, written after healing. */
const FINAL_KEYS = Array.from({ length: N_SHARDS }, (_, shard) => {
  for (let i = 0; ; i++) if (shardOf(`final${i}`, N_SHARDS) === shard) return `final${i}`
})

const pick = <A>(rng: Rng, items: readonly A[]): A => items[rng.nextInt(items.length)]!

interface Watcher {
  readonly name: string
  readonly target: WatchTarget
  readonly observations: WatchItem[]
  /** Per shard, the revision reached. */
  readonly position: Map<number, number>
  ended: string | undefined
}

const coverage = { events: 0, moves: 0, leaderCrashes: 0, movedShards: 0 }

const runSeed = (seed: number): SwarmSeedResult => {
  const world = new SimWorld(seed)
  const { network } = world
  const faults = world.stream("faults")
  const writerRandom = world.stream("writers")
  const servers = new Map<string, ShardKvServerShape>()
  const attempted = new Set<string>()
  /** Acknowledged value → its key. */
  const acknowledged = new Map<string, string>()
  const watchers: Watcher[] = []
  let problem: string | undefined
  let operations = 0

  const startReplica = (gid: number, id: number) =>
    world
      .start(
        groupPeers(gid)[id]!,
        makeShardKvServer({
          gid,
          id: id as NodeId,
          peers: groupPeers(gid),
          controllers,
          nShards: N_SHARDS,
          seed: seed * 13 + gid + id,
          tickMs: 10,
          maxRaftStateBytes: 16 * 1024,
          // Every shard keeps its whole history: the reference the watchers are checked against.
          limits: { watchHistoryEvents: 1_000_000, watchHistoryBytes: 1 << 30 },
          storageName: `shardkv-${gid}-${id}`,
        }),
      )
      .pipe(Effect.map((server) => servers.set(groupPeers(gid)[id]!, server)))
  const allReplicas = GIDS.flatMap((gid) => Object.keys(groupPeers(gid)).map((id) => [gid, Number(id)] as const))
  const replicaAddresses = allReplicas.map(([gid, id]) => groupPeers(gid)[id]!)

  const leaderOf = (gid: number) =>
    Object.values(groupPeers(gid))
      .filter((a) => world.isRunning(a) && servers.has(a))
      .map((a) => servers.get(a)!)
      .find((s) => s.rsm.raft.status().role === "leader")

  const writer = (n: number, kv: KvClientShape) =>
    Effect.gen(function* () {
      for (let i = 0; world.now() < FAULT_PHASE_MS; i++) {
        yield* Effect.sleep(10 + writerRandom.nextInt(80))
        const key = pick(writerRandom, KEYS)
        const value = `w${n}.${i}`
        const dice = writerRandom.nextInt(10)
        operations++
        if (dice < 6) {
          attempted.add(value)
          const exit = yield* Effect.exit(kv.put(key, value))
          if (Exit.isSuccess(exit)) acknowledged.set(value, key)
        } else if (dice < 8) {
          yield* Effect.exit(kv.delete(key))
        } else {
          // Keys of one hash tag share a shard: one transaction over two of them.
          const [x, y] = [pick(writerRandom, ["{t}.1", "{t}.2"]), "{t}.3"]
          attempted.add(`${value}x`)
          attempted.add(`${value}y`)
          const exit = yield* Effect.exit(
            kv.txn({
              compare: [],
              success: [
                { op: "put", key: x, value: `${value}x` },
                { op: "put", key: y, value: `${value}y` },
              ],
            }),
          )
          if (Exit.isSuccess(exit)) {
            acknowledged.set(`${value}x`, x)
            acknowledged.set(`${value}y`, y)
          }
        }
      }
    })

  const watch = (name: string, kv: KvClientShape, target: WatchTarget) => {
    const w: Watcher = { name, target, observations: [], position: new Map(), ended: undefined }
    watchers.push(w)
    const stream = kv.watch(target, { fromRevision: 1, waitMs: 1_000, progress: true })
    return Effect.forkChild(
      Stream.runForEach(stream, (item) =>
        Effect.sync(() => {
          if (item.type === "progress") w.position.set(item.shard!, item.revision)
          w.observations.push(item)
        }),
      ).pipe(
        Effect.catch((error) =>
          Effect.sync(() => {
            w.ended = String(error)
          }),
        ),
      ),
    )
  }

  const program = Effect.gen(function* () {
    yield* startControllers(world, ctrlPeers, N_SHARDS, seed)
    for (const [gid, id] of allReplicas) yield* startReplica(gid, id)
    network.setMaxDelay(5)
    const admin = yield* makeControllerClient(yield* world.client("admin"), { controllers, deadlineMs: 5_000 })
    const joined = new Set<number>()
    const join = (gid: number) =>
      admin.join({ [String(gid)]: Object.values(groupPeers(gid)) }).pipe(
        Effect.tap(() => Effect.sync(() => joined.add(gid))),
        Effect.ignore,
      )
    yield* join(100)
    const client = (name: string) =>
      Effect.flatMap(world.client(name), (rpc) => makeShardKvClient(rpc, { controllers, deadlineMs: 3_000 }))
    const writers = yield* Effect.forEach([1, 2], (n) =>
      Effect.flatMap(client(`writer-${n}`), (kv) => Effect.forkChild(writer(n, kv))),
    )
    const watch1 = yield* client("watch-1")
    const watch2 = yield* client("watch-2")
    const fibers = [
      yield* watch("key a", watch1, "a"),
      yield* watch("hash tag {t}", watch1, { prefix: "{t}" }),
      yield* watch("prefix dir/", watch2, { prefix: "dir/" }),
      yield* watch("everything", watch2, { prefix: "" }),
    ]

    while (world.now() < FAULT_PHASE_MS) {
      yield* Effect.sleep(150 + faults.nextInt(400))
      const dice = faults.nextInt(100)
      if (dice < 25) {
        // Shards move: a join, a leave (never the last group), or a move.
        coverage.moves++
        const out = GIDS.filter((g) => !joined.has(g))
        const choice = faults.nextInt(3)
        if (choice === 0 && out.length > 0) yield* join(pick(faults, out))
        else if (choice === 1 && joined.size > 1) {
          const gid = pick(faults, [...joined])
          yield* admin.leave([gid]).pipe(
            Effect.tap(() => Effect.sync(() => joined.delete(gid))),
            Effect.ignore,
          )
        } else if (joined.size > 0) {
          yield* Effect.ignore(admin.move(faults.nextInt(N_SHARDS), pick(faults, [...joined])))
        }
      } else if (dice < 40) world.partitionRandomly(replicaAddresses, faults)
      else if (dice < 50) network.heal()
      else if (dice < 65) {
        const leader = leaderOf(pick(faults, GIDS))
        const address = [...servers.entries()].find(([, s]) => s === leader)?.[0]
        if (address !== undefined) {
          coverage.leaderCrashes++
          yield* world.crash(address)
        }
      } else if (dice < 85) {
        const down = allReplicas.filter(([gid, id]) => !world.isRunning(groupPeers(gid)[id]!))
        if (down.length > 0) yield* startReplica(...pick(faults, down))
      } else {
        const client = pick(faults, ["watch-1", "watch-2"])
        network.disconnect(client)
        yield* Effect.forkChild(
          Effect.andThen(
            Effect.sleep(200 + faults.nextInt(1_500)),
            Effect.sync(() => network.connect(client)),
          ),
        )
      }
    }
    world.healNetwork()
    for (const c of ["watch-1", "watch-2"]) network.connect(c)
    for (const [gid, id] of allReplicas) if (!world.isRunning(groupPeers(gid)[id]!)) yield* startReplica(gid, id)
    yield* Effect.forEach(writers, Fiber.join)

    // One write per shard in the healed terms: each shard's owner then knows every committed entry.
    const healedAt = world.now()
    const lastWriter = yield* client("last-writer")
    for (const key of FINAL_KEYS) {
      attempted.add(`final:${key}`)
      let done = false
      while (!done && world.now() - healedAt < CATCH_UP_BOUND_MS) {
        done = Exit.isSuccess(yield* Effect.exit(lastWriter.put(key, `final:${key}`)))
      }
      if (!done) {
        problem = `no write to ${key} completed after healing`
        return
      }
      acknowledged.set(`final:${key}`, key)
    }

    /** Per shard, the store of the group serving it now (its leader's), when every replica has caught up. */
    /** Shards with data that ended at another group than the first one. */
    const moved = new Set<number>()
    const settledStores = (): Map<number, KvStateMachine> | undefined => {
      const stores = new Map<number, KvStateMachine>()
      for (const gid of GIDS) {
        const leader = leaderOf(gid)
        if (leader === undefined) continue
        const machine = leader.machine()
        for (let shard = 0; shard < N_SHARDS; shard++) {
          const store = machine.servingStore(shard)
          if (store === undefined) continue
          const replicas = Object.values(groupPeers(gid)).map((a) => servers.get(a)!.machine())
          if (replicas.some((m) => m.servingStore(shard)?.revision !== store.revision)) return undefined
          stores.set(shard, store)
          if (gid !== 100 && store.revision > 0) moved.add(shard)
        }
      }
      return stores.size === N_SHARDS ? stores : undefined
    }
    let stores: Map<number, KvStateMachine> | undefined
    while (world.now() - healedAt < CATCH_UP_BOUND_MS) {
      stores = settledStores()
      const caughtUp =
        stores !== undefined &&
        [...stores].every(([shard, store]) => {
          const finalKey = FINAL_KEYS[shard]!
          return (
            store.get(finalKey) === `final:${finalKey}` &&
            watchers.every((w) => w.ended !== undefined || (w.position.get(shard) ?? -1) >= store.revision)
          )
        })
      if (caughtUp) break
      yield* Effect.sleep(50)
    }
    for (const fiber of fibers) yield* Fiber.interrupt(fiber)
    coverage.movedShards += moved.size
    if (stores === undefined) {
      problem = `the groups did not settle within ${CATCH_UP_BOUND_MS} ms of healing`
      return
    }
    for (const w of watchers) if (w.ended !== undefined) problem ??= `watcher ${w.name} ended: ${w.ended}`
    for (const [shard, store] of stores) {
      if (store.history.compactRevision !== 0) problem ??= `shard ${shard}'s history is compacted`
      const history = store.history.all()
      const final = new Map<string, CheckedEntry>(
        store.list("").entries.map((e) => [e.key, { ...e, value: e.value ?? "" }]),
      )
      const acked = new Set([...acknowledged].filter(([, key]) => shardOf(key, N_SHARDS) === shard).map(([v]) => v))
      problem ??= checkStoreHistory(history, final, store.revision, attempted, acked)
      for (const w of watchers) {
        const watchedShards =
          typeof w.target === "string"
            ? [shardOf(w.target, N_SHARDS)]
            : w.target.prefix === "{t}"
              ? [shardOf("{t}", N_SHARDS)]
              : Array.from({ length: N_SHARDS }, (_, i) => i)
        if (!watchedShards.includes(shard)) continue
        const observations = w.observations
          .filter((item) => item.shard === shard)
          .map(
            (item): WatchObservation =>
              item.type === "progress" ? { kind: "progress", revision: item.revision } : { kind: "event", event: item },
          )
        const reached = w.position.get(shard) ?? 0
        if (reached < store.revision)
          problem ??= `watcher ${w.name} reached ${reached} of shard ${shard}'s ${store.revision}`
        problem ??= checkWatcher(
          history,
          {
            name: `${w.name} (shard ${shard})`,
            key: typeof w.target === "string" ? w.target : w.target.prefix,
            prefix: typeof w.target !== "string",
            after: 0,
            observations,
          },
          store.revision,
        )
        coverage.events += observations.filter((o) => o.kind === "event").length
      }
    }
  })

  const exit = world.run(program, FAULT_PHASE_MS + 3 * CATCH_UP_BOUND_MS)
  if (Exit.isFailure(exit)) problem ??= `run failed: ${String(exit.cause).slice(0, 500)}`
  return {
    ok: problem === undefined,
    ...(problem === undefined ? {} : { problem }),
    operations,
    virtualMs: world.now(),
  }
}

describe("sharded watch in the seeded world", () => {
  test("every watcher gets exactly each shard's committed changes of its range, across shard moves", () => {
    runSwarmSeeds("sharded watch", FILE, 5, runSeed)
    console.log(
      `sharded watch: ${coverage.events} events delivered, ${coverage.moves} reconfigurations tried, ` +
        `${coverage.leaderCrashes} leader crashes, ${coverage.movedShards} shards ended at another group with their history`,
    )
    if (process.env.KV_SEED === undefined) {
      expect(coverage.events).toBeGreaterThan(0)
      expect(coverage.movedShards).toBeGreaterThan(0)
    }
  }, 120_000)
})
