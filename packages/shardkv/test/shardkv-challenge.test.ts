/** Lab 5 challenges: deleted shards free their space; shards not blocked by a migration keep serving. */
import { describe, expect } from "bun:test"
import { labTest } from "./support/labTest.ts"
import { type Clerk, keysCoveringShards, labKeys, randstring, type ShardLab } from "./support/shardLab.ts"

const FILE = "packages/shardkv/test/shardkv-challenge.test.ts"

/** Runs `op` and fails unless it completed within `ms` of virtual time. */
const within = async <A>(lab: ShardLab, ms: number, what: string, op: () => Promise<A>): Promise<A> => {
  const start = lab.now()
  const result = await op()
  const took = lab.now() - start
  if (took > ms) throw new Error(`${what} took ${took} ms (more than ${ms} ms)`)
  return result
}

/** Get, Put, Get of `key` at the group that serves it, each within 1 s. */
const serveSoon = async (lab: ShardLab, ck: Clerk, key: string, value: string, suffix: string) => {
  await within(lab, 1_000, `Get(${key})`, () => lab.check(ck, key, value))
  await within(lab, 1_000, `Put(${key})`, () => lab.put(ck, key, value + suffix))
  await within(lab, 1_000, `Get(${key})`, () => lab.check(ck, key, value + suffix))
}

describe("challenges", () => {
  // maxraftstate 1: a snapshot after every applied entry, so the state is what the snapshot holds.
  labTest("shard deletion (TestChallenge1Delete)", FILE, { maxRaftStateBytes: 1 }, async ({ lab, random }) => {
    const ck = await lab.makeClient()
    await lab.join(0)
    // 30,000 bytes of values.
    const n = 30
    const ka = labKeys(n)
    const va = ka.map(() => randstring(1_000, () => random.next()))
    for (let i = 0; i < n; i++) await lab.put(ck, ka[i]!, va[i]!)
    const checkFew = async () => {
      for (let i = 0; i < 3; i++) await lab.check(ck, ka[i]!, va[i]!)
    }
    await checkFew()
    for (let iters = 0; iters < 2; iters++) {
      await lab.join(1)
      await lab.leave(0)
      await lab.join(2)
      await lab.sleep(3_000)
      await checkFew()
      await lab.leave(1)
      await lab.join(0)
      await lab.leave(2)
      await lab.sleep(3_000)
      await checkFew()
    }
    await lab.join(1)
    await lab.join(2)
    for (let round = 0; round < 3; round++) {
      await lab.sleep(1_000)
      await checkFew()
    }
    // 27 keys stored once, 3 keys also in the lab's duplicate tables, on 3 replicas, plus slop.
    const total = lab.totalPersistedBytes()
    const expected = 3 * ((n - 3) * 1_000 + 2 * 3 * 1_000 + 6_000)
    console.log(`snapshot + persisted Raft state over all servers: ${total} B (limit ${expected} B)`)
    expect(total).toBeLessThanOrEqual(expected)
    for (let i = 0; i < n; i++) await lab.check(ck, ka[i]!, va[i]!)
  })

  labTest(
    "unaffected shard access (TestChallenge2Unaffected)",
    FILE,
    { maxRaftStateBytes: 100, unreliable: true },
    async ({ lab }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      const ka = keysCoveringShards()
      const va = ka.map(() => "100")
      for (let i = 0; i < ka.length; i++) await lab.put(ck, ka[i]!, va[i]!)
      await lab.join(1)
      // The shards 101 owns now.
      const c = await lab.query(-1)
      const owned = c.shards.map((gid) => gid === lab.gid(1))
      // Wait for the migration, and for clients to use the new configuration.
      await lab.sleep(1_000)
      for (let s = 0; s < ka.length; s++) {
        if (!owned[s]) continue
        va[s] = "101"
        await lab.put(ck, ka[s]!, va[s]!)
      }
      // 100 dies and leaves: 101 can never pull 100's shards, but must keep serving its own.
      await lab.crashGroup(0)
      await lab.leave(0)
      await lab.sleep(1_000)
      expect(owned.some((o) => o)).toBe(true)
      for (let s = 0; s < ka.length; s++) if (owned[s]) await serveSoon(lab, ck, ka[s]!, va[s]!, "-1")
    },
  )

  labTest(
    "partial migration shard access (TestChallenge2Partial)",
    FILE,
    { maxRaftStateBytes: 100, unreliable: true },
    async ({ lab }) => {
      const ck = await lab.makeClient()
      await lab.join(0, 1, 2)
      // Give the groups time to reconfigure.
      await lab.sleep(1_000)
      const ka = keysCoveringShards()
      const va = ka.map(() => "100")
      for (let i = 0; i < ka.length; i++) await lab.put(ck, ka[i]!, va[i]!)
      // The shards 102 owns now.
      const c = await lab.query(-1)
      const owned = c.shards.map((gid) => gid === lab.gid(2))
      // 100 dies; 100 and 102 leave. 101 gets 102's shards but never 100's, and must serve the
      // ones that arrived as soon as they arrive.
      await lab.crashGroup(0)
      await lab.leave(0, 2)
      await lab.sleep(1_000)
      expect(owned.some((o) => o)).toBe(true)
      for (let s = 0; s < ka.length; s++) if (owned[s]) await serveSoon(lab, ck, ka[s]!, va[s]!, "-2")
    },
  )
})
