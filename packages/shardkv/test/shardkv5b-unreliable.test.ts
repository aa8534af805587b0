/** Lab 5B (sharded KV) on an unreliable network: reconfiguration with lost, delayed and reordered messages. */
import { describe } from "bun:test"
import { SeededRandom } from "@kv/rpc"
import { startAppenders } from "./support/appenders.ts"
import { labTest } from "./support/labTest.ts"
import { labKeys, randstring } from "./support/shardLab.ts"

const FILE = "packages/shardkv/test/shardkv5b-unreliable.test.ts"

describe("5B: shard movement on an unreliable network", () => {
  labTest(
    "unreliable 1 (TestUnreliable1_5B)",
    FILE,
    { maxRaftStateBytes: 100, unreliable: true },
    async ({ lab, random }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      const n = 10
      const ka = labKeys(n)
      const va = ka.map(() => randstring(5, () => random.next()))
      for (let i = 0; i < n; i++) await lab.put(ck, ka[i]!, va[i]!)
      await lab.join(1)
      await lab.join(2)
      await lab.leave(0)
      for (let ii = 0; ii < n * 2; ii++) {
        const i = ii % n
        await lab.check(ck, ka[i]!, va[i]!)
        const x = randstring(5, () => random.next())
        await lab.append(ck, ka[i]!, x)
        va[i] += x
      }
      await lab.join(0)
      await lab.leave(1)
      for (let ii = 0; ii < n * 2; ii++) {
        const i = ii % n
        await lab.check(ck, ka[i]!, va[i]!)
      }
    },
  )

  labTest(
    "unreliable 2 (TestUnreliable2_5B)",
    FILE,
    { maxRaftStateBytes: 100, unreliable: true },
    async ({ lab, random, seed }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      const n = 10
      const ka = labKeys(n)
      const va = ka.map(() => randstring(5, () => random.next()))
      for (let i = 0; i < n; i++) await lab.put(ck, ka[i]!, va[i]!)
      const appenders = await startAppenders(lab, ka, va, 10, seed)
      await lab.sleep(150)
      await lab.join(1)
      await lab.sleep(500)
      await lab.join(2)
      await lab.sleep(500)
      await lab.leave(0)
      await lab.sleep(500)
      await lab.leave(1)
      await lab.sleep(500)
      await lab.join(1)
      await lab.join(0)
      await lab.sleep(2_000)
      lab.network.setUnreliable(false)
      await appenders.stop()
      for (let i = 0; i < n; i++) await lab.check(ck, ka[i]!, va[i]!)
    },
  )

  labTest(
    "unreliable 3, linearizable (TestUnreliable3_5B)",
    FILE,
    { maxRaftStateBytes: 100, unreliable: true },
    async ({ lab, random, seed }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      const n = 10
      const ka = labKeys(n)
      for (let i = 0; i < n; i++)
        await lab.put(
          ck,
          ka[i]!,
          randstring(5, () => random.next()),
        )

      let done = false
      const clients = await Promise.all(ka.map(() => lab.makeClient()))
      const running = clients.map(async (ck1, c) => {
        const r = new SeededRandom(seed + 7_777 * (c + 1))
        while (!done) {
          const key = ka[r.int(n)]!
          const nv = randstring(5, () => r.next())
          if (r.int(1_000) < 500) await lab.append(ck1, key, nv)
          else if (r.int(1_000) < 100) await lab.put(ck1, key, nv)
          else await lab.get(ck1, key)
        }
      })
      await lab.sleep(150)
      await lab.join(1)
      await lab.sleep(500)
      await lab.join(2)
      await lab.sleep(500)
      await lab.leave(0)
      await lab.sleep(500)
      await lab.leave(1)
      await lab.sleep(500)
      await lab.join(1)
      await lab.join(0)
      await lab.sleep(2_000)
      done = true
      lab.network.setUnreliable(false)
      await Promise.all(running)
      lab.checkLinearizable()
    },
  )
})
