/**
 * Proves that kvraft watches deliver exactly the committed changes of their range, in revision
 * order, with no gap, no repeat and no going back, across leader changes, partitions, crashes
 * (of the leader too), snapshots and a watcher cut off from the network and reconnected. Each seed
 * builds a seeded world with a group of three, two writers (puts, deletes, transactions and CAS
 * with unique values) and four watchers (a key, two prefixes, everything from a later revision),
 * injects faults, heals, and waits for every watcher to reach the final revision; then the watch
 * checker compares each watcher with the group's own history, itself checked against the final
 * store and the writers' values, and every replica's history must be the same.
 *
 * KV_SEED=<n> replays one seed; KV_SWARM_SEEDS=<count> sets how many seeds a run covers.
 */
import { describe, expect, test } from "bun:test"
import type { NodeId } from "@kv/raft"
import type { Rng } from "@kv/sim"
import {
  type CheckedEntry,
  checkStoreHistory,
  checkWatchers,
  runSwarmSeeds,
  SimWorld,
  type SwarmSeedResult,
  type WatcherRecord,
  type WatchObservation,
} from "@kv/testkit"
import { Effect, Exit, Fiber, Stream } from "effect"
import { type KvClientShape, type KvServerShape, makeKvClient, makeKvServer, type WatchTarget } from "../src/index.ts"

const FILE = "packages/kvraft/test/watch.world.test.ts"
const FAULT_PHASE_MS = 4_000
const CATCH_UP_BOUND_MS = 30_000
const KEYS = ["a", "b", "dir/x", "dir/y", "dir/z", "other"]
const peers: Record<number, string> = { 1: "kv-1", 2: "kv-2", 3: "kv-3" }
const addresses = Object.values(peers)

const pick = <A>(rng: Rng, items: readonly A[]): A => items[rng.nextInt(items.length)]!

interface Watcher {
  readonly record: WatcherRecord & { observations: WatchObservation[] }
  position: number
  ended: string | undefined
}

const coverage = { events: 0, leaderCrashes: 0, snapshots: 0 }

const runSeed = (seed: number): SwarmSeedResult => {
  const world = new SimWorld(seed)
  const { network } = world
  const faults = world.stream("faults")
  const writerRandom = world.stream("writers")
  const servers = new Map<string, KvServerShape>()
  const attempted = new Set<string>()
  const acknowledged = new Set<string>()
  const watchers: Watcher[] = []
  let problem: string | undefined
  let operations = 0

  const startServer = (id: number) =>
    world
      .start(
        peers[id]!,
        makeKvServer({
          id: id as NodeId,
          peers,
          seed: seed * 7 + id,
          tickMs: 10,
          // Small: every replica snapshots (the history with it) many times over.
          maxRaftStateBytes: 6_000,
          // The whole run's history stays, so it is the reference the watchers are checked against.
          limits: { watchHistoryEvents: 1_000_000, watchHistoryBytes: 1 << 30 },
        }),
      )
      .pipe(Effect.map((server) => servers.set(peers[id]!, server)))

  const leader = () =>
    [...servers.entries()].find(([a, s]) => world.isRunning(a) && s.rsm.raft.status().role === "leader")

  const writer = (n: number, kv: KvClientShape) =>
    Effect.gen(function* () {
      for (let i = 0; world.now() < FAULT_PHASE_MS; i++) {
        yield* Effect.sleep(5 + writerRandom.nextInt(60))
        const key = pick(writerRandom, KEYS)
        const value = `w${n}.${i}`
        const dice = writerRandom.nextInt(10)
        operations++
        if (dice < 5) {
          attempted.add(value)
          const exit = yield* Effect.exit(kv.put(key, value))
          if (Exit.isSuccess(exit)) acknowledged.add(value)
        } else if (dice < 7) {
          yield* Effect.exit(kv.delete(key))
        } else if (dice < 9) {
          const other = pick(writerRandom, KEYS)
          attempted.add(`${value}a`)
          attempted.add(`${value}b`)
          const exit = yield* Effect.exit(
            kv.txn({
              compare: [],
              success: [
                { op: "put", key, value: `${value}a` },
                other === key ? { op: "get", key } : { op: "put", key: other, value: `${value}b` },
              ],
            }),
          )
          if (Exit.isSuccess(exit)) {
            acknowledged.add(`${value}a`)
            if (other !== key) acknowledged.add(`${value}b`)
          }
        } else {
          attempted.add(value)
          const exit = yield* Effect.exit(kv.putIf(key, value, { ifAbsent: true }))
          if (Exit.isSuccess(exit) && exit.value.applied) acknowledged.add(value)
        }
      }
    })

  const watch = (name: string, kv: KvClientShape, target: WatchTarget, fromRevision: number) =>
    Effect.gen(function* () {
      const w: Watcher = {
        record: {
          name,
          key: typeof target === "string" ? target : target.prefix,
          prefix: typeof target !== "string",
          after: fromRevision - 1,
          observations: [],
        },
        position: fromRevision - 1,
        ended: undefined,
      }
      watchers.push(w)
      const stream = kv.watch(target, { fromRevision, waitMs: 1_000, progress: true })
      return yield* Effect.forkChild(
        Stream.runForEach(stream, (item) =>
          Effect.sync(() => {
            if (item.type !== "progress") w.record.observations.push({ kind: "event", event: item })
            else {
              w.position = item.revision
              w.record.observations.push({ kind: "progress", revision: item.revision })
            }
          }),
        ).pipe(
          Effect.catch((error) =>
            Effect.sync(() => {
              w.ended = String(error)
            }),
          ),
        ),
      )
    })

  const faultInjector = Effect.gen(function* () {
    while (world.now() < FAULT_PHASE_MS) {
      yield* Effect.sleep(100 + faults.nextInt(400))
      const dice = faults.nextInt(100)
      if (dice < 20) world.partitionRandomly(addresses, faults)
      else if (dice < 35) network.heal()
      else if (dice < 50) {
        const current = leader()
        if (current !== undefined) {
          coverage.leaderCrashes++
          yield* world.crash(current[0])
        }
      } else if (dice < 60) {
        const running = addresses.filter((a) => world.isRunning(a))
        if (running.length > 0) yield* world.crash(pick(faults, running))
      } else if (dice < 80) {
        const down = Object.keys(peers).filter((id) => !world.isRunning(peers[Number(id)]!))
        if (down.length > 0) yield* startServer(Number(pick(faults, down)))
      } else if (dice < 90) {
        // A watcher's client cut off for a while (its polls and their replies are lost), then back.
        const client = pick(faults, ["watch-1", "watch-2", "watch-3"])
        network.disconnect(client)
        yield* Effect.forkChild(
          Effect.andThen(
            Effect.sleep(200 + faults.nextInt(1_500)),
            Effect.sync(() => network.connect(client)),
          ),
        )
      } else {
        network.setDropRate(faults.nextInt(3) * 0.05)
        network.setDuplicateRate(faults.nextInt(2) * 0.05)
      }
    }
    world.healNetwork()
    for (const client of ["watch-1", "watch-2", "watch-3"]) network.connect(client)
    for (const id of Object.keys(peers)) if (!world.isRunning(peers[Number(id)]!)) yield* startServer(Number(id))
  })

  const program = Effect.gen(function* () {
    for (const id of Object.keys(peers)) yield* startServer(Number(id))
    network.setMaxDelay(5)
    const client = (name: string) =>
      Effect.flatMap(world.client(name), (rpc) => makeKvClient(rpc, { servers: addresses, deadlineMs: 3_000 }))
    const writers = yield* Effect.forEach([1, 2], (n) =>
      Effect.flatMap(client(`writer-${n}`), (kv) => Effect.forkChild(writer(n, kv))),
    )
    const watch1 = yield* client("watch-1")
    const watch2 = yield* client("watch-2")
    const watch3 = yield* client("watch-3")
    const fibers = [
      yield* watch("key a", watch1, "a", 1),
      yield* watch("prefix dir/", watch2, { prefix: "dir/" }, 1),
      yield* watch("prefix dir/x", watch1, { prefix: "dir/x" }, 1),
    ]
    yield* Effect.sleep(1_000)
    fibers.push(yield* watch("everything from 10", watch3, { prefix: "" }, 10))
    yield* faultInjector
    yield* Effect.forEach(writers, Fiber.join)
    // One last write commits in the healed group's term, so every earlier entry is known committed
    // (a new leader learns what its predecessors committed only then); then every replica catches
    // up with it, and every watcher with the final revision.
    const healedAt = world.now()
    attempted.add("last")
    const lastWriter = yield* client("last-writer")
    let last = yield* Effect.exit(lastWriter.putIf("dir/last", "last", { ifAbsent: true }))
    // A timed-out attempt may have applied: its retry then finds the key there, and reads it.
    while (Exit.isFailure(last) && world.now() - healedAt < CATCH_UP_BOUND_MS) {
      last = yield* Effect.exit(lastWriter.putIf("dir/last", "last", { ifAbsent: true }))
    }
    if (Exit.isSuccess(last) && !last.value.applied && last.value.entry?.value === "last") {
      last = Exit.succeed({ applied: true, revision: last.value.entry.modRevision })
    }
    if (Exit.isFailure(last)) {
      problem = `no write completed after healing: ${String(last.cause)}`
      return
    }
    acknowledged.add("last")
    while (world.now() - healedAt < CATCH_UP_BOUND_MS) {
      const current = leader()?.[1]
      if (current !== undefined) {
        const finalRevision = current.machine().revision
        const replicasDone = [...servers.values()].every((s) => s.machine().revision === finalRevision)
        const watchersDone = watchers.every((w) => w.ended !== undefined || w.position >= finalRevision)
        if (finalRevision >= last.value.revision && replicasDone && watchersDone) break
      }
      yield* Effect.sleep(50)
    }
    for (const fiber of fibers) yield* Fiber.interrupt(fiber)
    const reference = leader()?.[1]
    if (reference === undefined) {
      problem = "no leader after healing"
      return
    }
    const store = reference.machine()
    for (const w of watchers) {
      if (w.ended !== undefined) problem ??= `watcher ${w.record.name} ended: ${w.ended}`
      else if (w.position < store.revision) {
        problem ??= `watcher ${w.record.name} reached only revision ${w.position} of ${store.revision} within ${CATCH_UP_BOUND_MS} ms`
      }
    }
    if (store.history.compactRevision !== 0)
      problem ??= `the reference history is compacted at ${store.history.compactRevision}`
    const history = store.history.all()
    for (const [address, server] of servers) {
      const other = server.machine().history.all()
      if (JSON.stringify(other) !== JSON.stringify(history))
        problem ??= `${address}'s history differs from the leader's`
    }
    const final = new Map<string, CheckedEntry>(
      store.list("").entries.map((e) => [e.key, { ...e, value: e.value ?? "" }]),
    )
    problem ??= checkStoreHistory(history, final, store.revision, attempted, acknowledged)
    problem ??= checkWatchers(
      history,
      watchers.map((w) => w.record),
      store.revision,
    )
    for (const w of watchers) coverage.events += w.record.observations.filter((o) => o.kind === "event").length
    coverage.snapshots += [...servers.values()].reduce((n, s) => n + (s.rsm.raft.status().snapshotIndex > 0 ? 1 : 0), 0)
  })

  const exit = world.run(program, FAULT_PHASE_MS + 3 * CATCH_UP_BOUND_MS)
  if (Exit.isFailure(exit)) problem ??= `run failed: ${String(exit.cause).slice(0, 500)}`
  return {
    ok: problem === undefined,
    ...(problem === undefined ? {} : { problem }),
    operations,
    virtualMs: world.now(),
    digest: `${watchers.map((w) => w.record.observations.length).join(",")}@${world.now()}/${network.totalDatagrams}`,
  }
}

describe("kvraft watch in the seeded world", () => {
  test("every watcher gets exactly its range's committed changes, in order, across faults", () => {
    runSwarmSeeds("kvraft watch", FILE, 40, runSeed)
    console.log(
      `kvraft watch: ${coverage.events} events delivered, ${coverage.leaderCrashes} leader crashes, ` +
        `${coverage.snapshots} replicas ended with a snapshot`,
    )
    if (process.env.KV_SEED === undefined) {
      expect(coverage.events).toBeGreaterThan(0)
      expect(coverage.leaderCrashes).toBeGreaterThan(0)
    }
  }, 120_000)
})
