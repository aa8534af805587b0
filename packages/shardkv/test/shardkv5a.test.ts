/** Lab 5A (sharded KV, static part): the data really is sharded, and groups refuse shards they do not own. */
import { describe, expect } from "bun:test"
import { countCompletedWithin, labTest } from "./support/labTest.ts"
import { keysCoveringShards, randstring } from "./support/shardLab.ts"

const FILE = "packages/shardkv/test/shardkv5a.test.ts"

describe("5A: static shards", () => {
  labTest("static shards (TestStaticShards5A)", FILE, { maxRaftStateBytes: -1 }, async ({ lab, random }) => {
    const ck = await lab.makeClient()
    await lab.join(0)
    await lab.join(1)
    const ka = keysCoveringShards()
    const va = ka.map(() => randstring(20, () => random.next()))
    for (let i = 0; i < ka.length; i++) await lab.put(ck, ka[i]!, va[i]!)
    for (let i = 0; i < ka.length; i++) await lab.check(ck, ka[i]!, va[i]!)

    // With one group down, only the Gets of the other group's shards can complete.
    await lab.crashGroup(1)
    lab.checklogs() // no snapshots allowed
    const gets = ka.map(async (key, i) => {
      const ck1 = await lab.makeClient()
      await lab.check(ck1, key, va[i]!)
    })
    expect(await countCompletedWithin(lab, gets, 2_000)).toBe(5)

    // The group comes back and serves its shards again, the stuck Gets included.
    await lab.restartGroup(1)
    for (let i = 0; i < ka.length; i++) await lab.check(ck, ka[i]!, va[i]!)
    await Promise.all(gets)
  })

  labTest("rejection (TestRejection5A)", FILE, { maxRaftStateBytes: -1 }, async ({ lab, random }) => {
    const ck = await lab.makeClient()
    await lab.join(0)
    await lab.join(1)
    const ka = keysCoveringShards()
    const va = ka.map(() => randstring(20, () => random.next()))
    for (let i = 0; i < ka.length; i++) await lab.put(ck, ka[i]!, va[i]!)
    for (let i = 0; i < ka.length; i++) await lab.check(ck, ka[i]!, va[i]!)

    // A second controller claims group 100 serves every shard. The groups follow the real
    // controller, so group 100 must refuse the keys of group 101's shards.
    const fake = await lab.makeController("ctrl-fake")
    await lab.run(fake.admin.join({ [String(lab.gid(0))]: lab.servers(0) }))
    const ck1 = await lab.makeClient(fake.addresses)
    const gets = ka.map((key, i) => lab.check(ck1, key, va[i]!))
    expect(await countCompletedWithin(lab, gets, 2_000)).toBe(5)
  })
})
