/**
 * A clerk whose cached configuration sends a key to a group that has since given the shard away
 * and then gone silent (crashed, or cut off) finds the new owner within a few round trips: once
 * its request goes unanswered for a retransmission timeout, it asks the controller beside the
 * wait and moves to the shard's new group, instead of spending a whole group attempt (2 s) on
 * replicas that will never answer. Reliable network, virtual time; one seed per run.
 */
import { describe, expect } from "bun:test"
import { labTest } from "./support/labTest.ts"
import { keysCoveringShards } from "./support/shardLab.ts"

const FILE = "packages/shardkv/test/clientStaleConfig.test.ts"

/** Several round trips of the lab's 0–5 ms links and a read round, far below a group attempt. */
const BOUND_MS = 400

describe("a clerk on a stale configuration", () => {
  labTest("finds the new owner soon when the old one is silent", FILE, { maxRaftStateBytes: -1 }, async ({ lab }) => {
    const ck = await lab.makeClient()
    await lab.join(0)
    const keys = keysCoveringShards()
    // The clerk caches the configuration in which group 100 serves every shard.
    for (const key of keys) await lab.put(ck, key, `v${key}`)
    await lab.join(1)
    await lab.leave(0)
    // Every shard reaches 101 (a second clerk, with the latest configuration, reads them there).
    const fresh = await lab.makeClient()
    for (const key of keys) await lab.check(fresh, key, `v${key}`)
    expect((await lab.query()).shards.every((gid) => gid === lab.gid(1))).toBe(true)
    await lab.crashGroup(0)

    const start = lab.now()
    await lab.check(ck, keys[0]!, `v${keys[0]}`)
    const took = lab.now() - start
    console.log(`first read on the stale configuration: ${took.toFixed(0)} ms of virtual time`)
    expect(took).toBeLessThan(BOUND_MS)
    // A write goes the same way, exactly once.
    await lab.append(ck, keys[1]!, "+")
    await lab.check(fresh, keys[1]!, `v${keys[1]}+`)
    lab.checkLinearizable()
  })
})
