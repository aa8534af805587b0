/** The shard-controller lab (TestBasic, TestMulti, TestMinimalAgain) against replicated controller servers. */
import { describe, expect, test } from "bun:test"
import { seedFromEnv } from "@kv/rpc"
import { type CtrlClerk, CtrlLab, check, checkMinimal, N_SHARDS } from "./support/ctrlLab.ts"

const FILE = "packages/shardctrler/test/ctrler.test.ts"
const seed = seedFromEnv()
console.log(`shardctrler lab seed ${seed} (replay: KV_SEED=${seed} bun test ${FILE})`)

const withLab = (body: (lab: CtrlLab, ck: CtrlClerk) => Promise<void>) => async () => {
  const lab = new CtrlLab(3, seed)
  await lab.world.drive(async () => {
    try {
      await lab.init()
      await body(lab, await lab.makeClerk())
    } finally {
      await lab.cleanup()
    }
  })
  console.log(`${(lab.world.now() / 1000).toFixed(1)} s of virtual time`)
}

const numeric = (c: { groups: Record<string, readonly string[]> }, gid: number) => c.groups[String(gid)]

describe("shard controller (TestBasic)", () => {
  test(
    "basic leave/join, historical queries, move, concurrent leave/join, minimal transfers",
    withLab(async (lab, ck) => {
      const cfa = [await ck.query(-1)]
      await check([], ck)
      await ck.join({ 1: ["x", "y", "z"] })
      await check([1], ck)
      cfa.push(await ck.query(-1))
      await ck.join({ 2: ["a", "b", "c"] })
      await check([1, 2], ck)
      cfa.push(await ck.query(-1))
      const cfx = await ck.query(-1)
      expect(numeric(cfx, 1)).toEqual(["x", "y", "z"])
      expect(numeric(cfx, 2)).toEqual(["a", "b", "c"])
      await ck.leave([1])
      await check([2], ck)
      cfa.push(await ck.query(-1))
      await ck.leave([2])
      cfa.push(await ck.query(-1))

      // Historical queries: every replica, in turn shut down, must not change history.
      for (let s = 0; s < 3; s++) {
        await lab.crash(s)
        for (const c of cfa) expect(await ck.query(c.num)).toEqual(c)
        await lab.restart(s)
      }

      // Move: each Move pins a shard and makes a new configuration.
      await ck.join({ 503: ["3a", "3b", "3c"] })
      await ck.join({ 504: ["4a", "4b", "4c"] })
      for (let i = 0; i < N_SHARDS; i++) {
        const cf = await ck.query(-1)
        const gid = i < N_SHARDS / 2 ? 503 : 504
        await ck.move(i, gid)
        if (cf.shards[i] !== gid) expect((await ck.query(-1)).num).toBeGreaterThan(cf.num)
      }
      const cf2 = await ck.query(-1)
      for (let i = 0; i < N_SHARDS; i++) expect(cf2.shards[i]).toBe(i < N_SHARDS / 2 ? 503 : 504)
      await ck.leave([503])
      await ck.leave([504])

      // Concurrent leave/join from 10 clerks.
      const npara = 10
      const gids = Array.from({ length: npara }, (_, i) => i * 10 + 100)
      const clerks = await Promise.all(gids.map(() => lab.makeClerk()))
      await Promise.all(
        gids.map(async (gid, i) => {
          const c = clerks[i]!
          await c.join({ [gid + 1000]: [`s${gid}a`] })
          await c.join({ [gid]: [`s${gid}b`] })
          await c.leave([gid + 1000])
        }),
      )
      await check(gids, ck)

      // Minimal transfers after joins: no shard moves between groups that existed before.
      const c1 = await ck.query(-1)
      const added = Array.from({ length: 5 }, (_, i) => npara + 1 + i)
      for (const gid of added) await ck.join({ [gid]: [`${gid}a`, `${gid}b`, `${gid}b`] })
      const c2 = await ck.query(-1)
      checkMinimal(c1, c2, gids)

      // Minimal transfers after leaves: shards of the groups that stay do not move.
      for (const gid of added) await ck.leave([gid])
      const c3 = await ck.query(-1)
      for (let j = 0; j < N_SHARDS; j++) if (gids.includes(c2.shards[j]!)) expect(c3.shards[j]).toBe(c2.shards[j]!)
    }),
    120_000,
  )
})

describe("shard controller (TestMulti)", () => {
  test(
    "multi-group join/leave, concurrent multi leave/join, minimal transfers, same config after leader change",
    withLab(async (lab, ck) => {
      await check([], ck)
      await ck.join({ 1: ["x", "y", "z"], 2: ["a", "b", "c"] })
      await check([1, 2], ck)
      await ck.join({ 3: ["j", "k", "l"] })
      await check([1, 2, 3], ck)
      const cfx = await ck.query(-1)
      expect(numeric(cfx, 3)).toEqual(["j", "k", "l"])
      await ck.leave([1, 3])
      await check([2], ck)
      expect(numeric(await ck.query(-1), 2)).toEqual(["a", "b", "c"])
      await ck.leave([2])

      const npara = 10
      const gids = Array.from({ length: npara }, (_, i) => i + 1000)
      const clerks = await Promise.all(gids.map(() => lab.makeClerk()))
      await Promise.all(
        gids.map(async (gid, i) => {
          const c = clerks[i]!
          await c.join({
            [gid]: [`${gid}a`, `${gid}b`, `${gid}c`],
            [gid + 1000]: [`${gid + 1000}a`],
            [gid + 2000]: [`${gid + 2000}a`],
          })
          await c.leave([gid + 1000, gid + 2000])
        }),
      )
      await check(gids, ck)

      const c1 = await ck.query(-1)
      const added = Array.from({ length: 5 }, (_, i) => npara + 1 + i)
      await ck.join(Object.fromEntries(added.map((gid) => [gid, [`${gid}a`, `${gid}b`]])))
      const c2 = await ck.query(-1)
      checkMinimal(c1, c2, gids)
      await ck.leave(added)
      const c3 = await ck.query(-1)
      for (let j = 0; j < N_SHARDS; j++) if (gids.includes(c2.shards[j]!)) expect(c3.shards[j]).toBe(c2.shards[j]!)

      // Same configuration after the leader dies: rebalancing is deterministic on every replica.
      const leader = lab.leader()
      expect(leader).toBeDefined()
      const c = await ck.query(-1)
      await lab.crash(leader!)
      let attempts = 0
      while (lab.leader() === undefined) {
        if (++attempts >= 3) throw new Error("leader not found")
        await lab.sleep(1_000)
      }
      expect(await ck.query(-1)).toEqual(c)
    }),
    120_000,
  )
})

describe("shard controller (TestMinimalAgain)", () => {
  test(
    "a third join moves at most NShards/3+1 shards, all to the new group; its leave moves only its shards",
    withLab(async (_lab, ck) => {
      await ck.join({ 1: ["a"] })
      await ck.join({ 2: ["b"] })
      const before = await ck.query(-1)
      await ck.join({ 3: ["c"] })
      const after = await check([1, 2, 3], ck)
      let moved = 0
      for (let j = 0; j < N_SHARDS; j++) {
        if (before.shards[j] !== after.shards[j]) {
          moved++
          expect(after.shards[j]).toBe(3)
        }
      }
      expect(moved).toBeLessThanOrEqual(Math.floor(N_SHARDS / 3) + 1)
      await ck.leave([3])
      const left = await check([1, 2], ck)
      for (let j = 0; j < N_SHARDS; j++) if (after.shards[j] !== 3) expect(left.shards[j]).toBe(after.shards[j]!)
    }),
    60_000,
  )
})

describe("admin errors over the wire", () => {
  test(
    "joining an existing gid, leaving an unknown one and moving to an unknown gid are typed errors",
    withLab(async (_lab, ck) => {
      await ck.join({ 7: ["a"] })
      await expect(ck.join({ 7: ["b"] })).rejects.toMatchObject({ code: "GroupExists" })
      await expect(ck.leave([8])).rejects.toMatchObject({ code: "UnknownGroup" })
      await expect(ck.move(0, 9)).rejects.toMatchObject({ code: "UnknownGroup" })
      await expect(ck.move(N_SHARDS, 7)).rejects.toMatchObject({ code: "BadShard" })
      expect((await ck.query(-1)).num).toBe(1)
    }),
    60_000,
  )
})

describe("exactly-once admin operations", () => {
  test(
    "joins and leaves retried through loss and duplication each apply once (a retried join never sees GroupExists)",
    withLab(async (lab, ck) => {
      lab.network.setUnreliable(true)
      lab.network.setDuplicateRate(0.3)
      for (let gid = 1; gid <= 15; gid++) await ck.join({ [gid]: [`g${gid}`] })
      for (let gid = 1; gid <= 10; gid++) await ck.leave([gid])
      lab.network.setUnreliable(false)
      lab.network.setDuplicateRate(0)
      const c = await check([11, 12, 13, 14, 15], ck)
      // One configuration per operation: no operation was applied twice.
      expect(c.num).toBe(25)
    }),
    120_000,
  )
})
