/**
 * Proves that replacing a kvraft group's leader survives a partition in the middle of the change,
 * in virtual time: the leader being replaced is cut off while its replacement catches up as a
 * learner; the others elect a leader, the replace carries on with it (promote, remove the old one),
 * a client's appends all land exactly once, and one seed gives one run.
 */
import { describe, expect, test } from "bun:test"
import type { NodeId } from "@kv/raft"
import { seedFromEnv } from "@kv/sim"
import { SimWorld } from "@kv/testkit"
import { Duration, Effect, Exit, Fiber } from "effect"
import { makeKvClient, makeKvServer, makeMemberClient, type ReplaceProgress, replaceMember } from "../src/index.ts"

const FILE = "packages/kvraft/test/membership.world.test.ts"

const run = (seed: number) => {
  const world = new SimWorld(seed)
  world.network.setMaxDelay(5)
  // Addresses in host:port form, as the member admin requires of a new member's address.
  const address = (id: number) => `10.0.0.${id}:7000`
  const peers: Record<number, string> = { 1: address(1), 2: address(2), 3: address(3) }
  const steps: string[] = []
  const program = Effect.gen(function* () {
    for (const [id, address] of Object.entries(peers)) {
      yield* world.start(address, makeKvServer({ id: Number(id) as NodeId, peers, seed: seed + Number(id) }))
    }
    const all = [...Object.values(peers), address(4)]
    const kv = yield* makeKvClient(yield* world.client("client"), { servers: all, deadlineMs: 60_000 })
    const admin = yield* makeMemberClient(yield* world.client("admin"), { servers: all, deadlineMs: 60_000 })
    let acknowledged = 0
    const load = yield* Effect.forkChild(
      Effect.gen(function* () {
        for (let i = 0; ; i++) {
          yield* kv.append("k", `${i},`)
          acknowledged = i + 1
        }
      }),
    )
    yield* Effect.sleep(Duration.millis(500))
    const before = yield* admin.list()
    const oldLeader = before.leader
    // The new member joins knowing where the group is; it waits until it is added.
    yield* world.start(address(4), makeKvServer({ id: 4 as NodeId, peers, join: true, seed: seed + 4 }))
    let catchingUp = false
    const onProgress = (p: ReplaceProgress) => {
      if (p.step === "catching-up") catchingUp = true
      steps.push(p.step === "catching-up" ? `catching-up` : p.step === "waiting" ? "waiting" : p.step)
    }
    const replacing = yield* Effect.forkChild(
      replaceMember(admin, oldLeader, { id: 4, address: address(4) }, { onProgress, pollMs: 50 }),
    )
    for (let waited = 0; !catchingUp; waited += 5) {
      if (waited > 10_000) return yield* Effect.die(new Error(`no catching up after 10 s: ${steps.join(", ")}`))
      yield* Effect.sleep(Duration.millis(5))
    }
    // The leader being replaced is cut off from every other server (clients still reach it).
    const others = all.filter((a) => a !== peers[oldLeader])
    world.network.partition([[peers[oldLeader]!], others])
    yield* Effect.sleep(Duration.millis(3_000))
    world.network.heal()
    world.network.setMaxDelay(5)
    const members = yield* Fiber.join(replacing)
    yield* Effect.sleep(Duration.millis(500))
    yield* Fiber.interrupt(load)
    const value = yield* kv.get("k")
    const after = yield* admin.list()
    return {
      members: members.map((m) => m.id).sort(),
      oldLeader,
      value,
      acknowledged,
      elected: after.term > before.term && after.leader !== oldLeader,
    }
  })
  const exit = world.run(program, 600_000)
  return { exit, steps, virtualMs: world.now() }
}

describe("kvraft membership in the seeded world", () => {
  test("replacing the leader carries on through a partition that cuts it off mid-change", () => {
    const seed = seedFromEnv().value
    console.log(`world seed ${seed} (replay: KV_SEED=${seed} bun test ${FILE})`)
    const first = run(seed)
    if (Exit.isFailure(first.exit)) throw new Error(`run failed: ${String(first.exit.cause)}`)
    const { members, oldLeader, value, acknowledged, elected } = first.exit.value
    expect(elected).toBe(true)
    expect(members).toEqual([1, 2, 3, 4].filter((id) => id !== oldLeader))
    // Every acknowledged append exactly once, in order (the interrupted last one at most once more).
    const appended = value.split(",").filter((x) => x !== "")
    expect(appended.slice(0, acknowledged)).toEqual(Array.from({ length: acknowledged }, (_, i) => String(i)))
    expect(appended.length - acknowledged).toBeLessThanOrEqual(1)
    expect(first.steps).toContain("promoting")
    expect(first.steps).toContain("removing")
    console.log(
      `${acknowledged} appends; replace steps ${[...new Set(first.steps)].join(" → ")}; ${first.virtualMs} ms virtual`,
    )
    const again = run(seed)
    expect(again.virtualMs).toBe(first.virtualMs)
    expect(again.steps).toEqual(first.steps)
  }, 60_000)
})
