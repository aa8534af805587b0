// Proves that one seed replays a whole run (same digest) and that seeded streams are independent.
import { describe, expect, test } from "bun:test"
import { type ProcessContext, Seed, seedFromEnv, World } from "../src/index.ts"

const seed = seedFromEnv()
console.log(`seed ${seed.value} (replay: KV_SEED=${seed.value} bun test packages/sim/test/determinism.test.ts)`)

const nodes = ["n1", "n2", "n3"]

/** A gossiping process that logs to disk, plus crashes, partitions and restarts from the fault stream. */
const run = (s: number): { digest: string; events: number } => {
  const world = new World({ seed: s, network: { loss: 0.05, duplication: 0.05, delayMinMs: 1, delayMaxMs: 20 } })
  const gossip = (ctx: ProcessContext) => {
    let heard = 0
    ctx.onDatagram((d) => {
      heard++
      ctx.disk.append("log", d.payload)
      if (ctx.random.chance(0.5)) ctx.disk.fsync("log")
    })
    const tick = () => {
      const to = nodes[ctx.random.nextInt(nodes.length)]!
      ctx.endpoint.send(to, new Uint8Array([heard & 0xff, ctx.incarnation]))
      ctx.clock.setTimer(ctx.random.between(5, 15), tick, "tick")
    }
    ctx.clock.setTimer(1, tick, "tick")
  }
  for (const n of nodes) world.processes.start(n, gossip)
  const faults = world.stream("faults")
  for (let t = 100; t <= 2_000; t += 100) {
    world.runUntil(t)
    const victim = nodes[faults.nextInt(nodes.length)]!
    const roll = faults.nextInt(4)
    if (roll === 0) world.processes.crash(victim)
    else if (roll === 1) world.processes.restart(victim)
    else if (roll === 2)
      world.network.partition(
        [victim],
        nodes.filter((n) => n !== victim),
      )
    else world.network.heal()
  }
  return { digest: world.digest, events: world.trace.events }
}

describe("one seed, one run", () => {
  test("the same seed twice gives the same digest", () => {
    const a = run(seed.value)
    const b = run(seed.value)
    expect(a.events).toBeGreaterThan(100)
    expect(b).toEqual(a)
  })

  test("different seeds give different digests", () => {
    expect(run(seed.value).digest).not.toBe(run(seed.value + 1).digest)
  })

  test("a new stream does not shift the others", () => {
    const s = new Seed(42)
    const before = s.stream("network")
    const first = [before.nextU32(), before.nextU32(), before.nextU32()]
    const extra = s.stream("disk:n9")
    extra.nextU32()
    const again = s.stream("network")
    expect([again.nextU32(), again.nextU32(), again.nextU32()]).toEqual(first)
    expect(s.stream("network").nextU32()).not.toBe(s.stream("disk:n1").nextU32())
  })

  test("KV_SEED selects the seed", () => {
    expect(seedFromEnv({ KV_SEED: "123" }).value).toBe(123)
    expect(() => seedFromEnv({ KV_SEED: "x" })).toThrow()
  })
})
