/** Lab 5B (sharded KV): shards move between groups while clients keep working, through crashes. */
import { describe } from "bun:test"
import type { SeededRandom } from "@kv/rpc"
import { startAppenders } from "./support/appenders.ts"
import { labTest } from "./support/labTest.ts"
import { type Clerk, labKeys, randstring, type ShardLab } from "./support/shardLab.ts"

const FILE = "packages/shardkv/test/shardkv5b.test.ts"

/** Puts `n` random values and checks them. */
const fill = async (lab: ShardLab, ck: Clerk, n: number, random: SeededRandom, length = 20) => {
  const ka = labKeys(n)
  const va = ka.map(() => randstring(length, () => random.next()))
  for (let i = 0; i < n; i++) await lab.put(ck, ka[i]!, va[i]!)
  for (let i = 0; i < n; i++) await lab.check(ck, ka[i]!, va[i]!)
  return { ka, va }
}

/** Checks every key, appending a random 5-character string to each. */
const checkAndAppend = async (lab: ShardLab, ck: Clerk, ka: string[], va: string[], random: SeededRandom) => {
  for (let i = 0; i < ka.length; i++) {
    await lab.check(ck, ka[i]!, va[i]!)
    const x = randstring(5, () => random.next())
    await lab.append(ck, ka[i]!, x)
    va[i] += x
  }
}

const checkAll = async (lab: ShardLab, ck: Clerk, ka: string[], va: string[]) => {
  for (let i = 0; i < ka.length; i++) await lab.check(ck, ka[i]!, va[i]!)
}

describe("5B: shard movement", () => {
  labTest("join then leave (TestJoinLeave5B)", FILE, { maxRaftStateBytes: -1 }, async ({ lab, random }) => {
    const ck = await lab.makeClient()
    await lab.join(0)
    const { ka, va } = await fill(lab, ck, 10, random, 5)
    await lab.join(1)
    await checkAndAppend(lab, ck, ka, va, random)
    await lab.leave(0)
    await checkAndAppend(lab, ck, ka, va, random)
    // Allow time for shards to transfer, then the departed group must not be needed.
    await lab.sleep(1_000)
    lab.checklogs()
    await lab.crashGroup(0)
    await checkAll(lab, ck, ka, va)
  })

  labTest(
    "snapshots, join, and leave (TestSnapshot5B)",
    FILE,
    { maxRaftStateBytes: 1_000 },
    async ({ lab, random }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      const { ka, va } = await fill(lab, ck, 30, random)
      await lab.join(1)
      await lab.join(2)
      await lab.leave(0)
      await checkAndAppend(lab, ck, ka, va, random)
      await lab.leave(1)
      await lab.join(0)
      await checkAndAppend(lab, ck, ka, va, random)
      await lab.sleep(1_000)
      await checkAll(lab, ck, ka, va)
      await lab.sleep(1_000)
      lab.checklogs()
      // Every group restarts from its snapshot and log.
      for (const gi of [0, 1, 2]) await lab.crashGroup(gi)
      for (const gi of [0, 1, 2]) await lab.restartGroup(gi)
      await checkAll(lab, ck, ka, va)
    },
  )

  labTest(
    "servers miss configuration changes (TestMissChange5B)",
    FILE,
    { maxRaftStateBytes: 1_000 },
    async ({ lab, random }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      const { ka, va } = await fill(lab, ck, 10, random)
      await lab.join(1)
      for (const gi of [0, 1, 2]) await lab.crash(gi, 0)
      await lab.join(2)
      await lab.leave(1)
      await lab.leave(0)
      await checkAndAppend(lab, ck, ka, va, random)
      await lab.join(1)
      await checkAndAppend(lab, ck, ka, va, random)
      // Replica 0 of each group comes back having missed several configurations.
      for (const gi of [0, 1, 2]) await lab.restart(gi, 0)
      await checkAndAppend(lab, ck, ka, va, random)
      await lab.sleep(2_000)
      for (const gi of [0, 1, 2]) await lab.crash(gi, 1)
      await lab.join(0)
      await lab.leave(2)
      await checkAndAppend(lab, ck, ka, va, random)
      for (const gi of [0, 1, 2]) await lab.restart(gi, 1)
      await checkAll(lab, ck, ka, va)
    },
  )

  labTest(
    "concurrent puts and configuration changes (TestConcurrent1_5B)",
    FILE,
    { maxRaftStateBytes: 100 },
    async ({ lab, random, seed }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      const { ka, va } = await fill(lab, ck, 10, random, 5)
      const appenders = await startAppenders(lab, ka, va, 10, seed)
      await lab.sleep(150)
      await lab.join(1)
      await lab.sleep(500)
      await lab.join(2)
      await lab.sleep(500)
      await lab.leave(0)
      await lab.crashGroup(0)
      await lab.sleep(100)
      await lab.crashGroup(1)
      await lab.sleep(100)
      await lab.crashGroup(2)
      await lab.leave(2)
      await lab.sleep(100)
      for (const gi of [0, 1, 2]) await lab.restartGroup(gi)
      await lab.sleep(100)
      await lab.join(0)
      await lab.leave(1)
      await lab.sleep(500)
      await lab.join(1)
      await lab.sleep(1_000)
      await appenders.stop()
      await checkAll(lab, ck, ka, va)
    },
  )

  // Shards moving and groups restarting, without snapshots.
  labTest(
    "more concurrent puts and configuration changes (TestConcurrent2_5B)",
    FILE,
    { maxRaftStateBytes: -1 },
    async ({ lab, random, seed }) => {
      const ck = await lab.makeClient()
      await lab.join(1)
      await lab.join(0)
      await lab.join(2)
      const { ka, va } = await fill(lab, ck, 10, random, 1)
      const appenders = await startAppenders(lab, ka, va, 50, seed)
      await lab.leave(0)
      await lab.leave(2)
      await lab.sleep(3_000)
      await lab.join(0)
      await lab.join(2)
      await lab.leave(1)
      await lab.sleep(3_000)
      await lab.join(1)
      await lab.leave(0)
      await lab.leave(2)
      await lab.sleep(3_000)
      await lab.crashGroup(1)
      await lab.crashGroup(2)
      await lab.sleep(1_000)
      await lab.restartGroup(1)
      await lab.restartGroup(2)
      await lab.sleep(2_000)
      await appenders.stop()
      await checkAll(lab, ck, ka, va)
    },
  )

  labTest(
    "concurrent configuration change and restart (TestConcurrent3_5B)",
    FILE,
    { maxRaftStateBytes: 300 },
    async ({ lab, random, seed }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      const { ka, va } = await fill(lab, ck, 10, random, 1)
      const appenders = await startAppenders(lab, ka, va, 10, seed)
      const t0 = lab.now()
      while (lab.now() - t0 < 12_000) {
        await lab.join(2)
        await lab.join(1)
        await lab.sleep(random.int(900))
        for (const gi of [0, 1, 2]) await lab.crashGroup(gi)
        for (const gi of [0, 1, 2]) await lab.restartGroup(gi)
        await lab.sleep(random.int(900))
        await lab.leave(1)
        await lab.leave(2)
        await lab.sleep(random.int(900))
      }
      await lab.sleep(2_000)
      await appenders.stop()
      await checkAll(lab, ck, ka, va)
    },
  )
})
