/**
 * A client keeps finding its group when every replica it was configured with is replaced: it
 * learns the members from the servers that answer it, not only from leader hints (which never
 * come once every replica it knows is gone). In virtual time; `KV_SEED` replays a run.
 */
import { describe, expect, test } from "bun:test"
import type { NodeId } from "@kv/raft"
import { seedFromEnv } from "@kv/sim"
import { SimWorld } from "@kv/testkit"
import { Duration, Effect, Exit } from "effect"
import { type KvServerShape, makeKvClient, makeKvServer } from "../src/index.ts"

const FILE = "packages/kvraft/test/clientFollowsMembers.test.ts"
const address = (id: number) => `10.0.0.${id}:7000`

const run = (seed: number, refreshMembersMs?: number) => {
  const world = new SimWorld(seed)
  world.network.setMaxDelay(5)
  const peers: Record<number, string> = { 1: address(1), 2: address(2), 3: address(3) }
  const servers = new Map<number, KvServerShape>()
  const start = (id: number, join: boolean) =>
    world
      .start(address(id), makeKvServer({ id: id as NodeId, peers, seed: seed + id, join }))
      .pipe(Effect.map((server) => servers.set(id, server)))
  const leader = () => [...servers.values()].find((s) => s.rsm.raft.status().role === "leader")
  /** Retries a change through whichever replica leads until it commits. */
  const change = (make: (s: KvServerShape) => Effect.Effect<unknown, unknown>) =>
    Effect.gen(function* () {
      for (;;) {
        const s = leader()
        if (s !== undefined && (yield* Effect.exit(make(s)))._tag === "Success") return
        yield* Effect.sleep(Duration.millis(50))
      }
    })
  const program = Effect.gen(function* () {
    for (const id of [1, 2, 3]) yield* start(id, false)
    const kv = yield* makeKvClient(yield* world.client("client"), {
      servers: Object.values(peers),
      deadlineMs: 20_000,
      ...(refreshMembersMs === undefined ? {} : { refreshMembersMs }),
    })
    yield* kv.put("k", "0")
    for (const id of [4, 5, 6]) {
      yield* start(id, true)
      yield* change((s) => s.rsm.raft.addVoter(id as NodeId, address(id)))
    }
    // The client keeps working while the group grows, then every replica it was given leaves.
    for (let i = 1; i <= 20; i++) {
      yield* kv.put("k", String(i))
      yield* Effect.sleep(Duration.millis(500))
    }
    for (const id of [1, 2, 3]) {
      yield* change((s) => s.rsm.raft.removeMember(id as NodeId))
      yield* world.crash(address(id))
      servers.delete(id)
    }
    return yield* kv.get("k")
  })
  return world.run(program, 600_000)
}

describe("a client follows its group's membership", () => {
  test("every configured replica replaced: the client still reads and writes through the new members", () => {
    const seed = seedFromEnv().value
    console.log(`seed ${seed} (replay: KV_SEED=${seed} bun test ${FILE})`)
    const exit = run(seed)
    if (Exit.isFailure(exit)) throw new Error(`run failed: ${String(exit.cause)}`)
    expect(exit.value).toBe("20")
  })
})
