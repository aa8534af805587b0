/** Lab 4A: the linearizable KV service on Raft, without snapshots. */
import { describe, expect } from "bun:test"
import { checkClientAppends, genericTest } from "./support/genericTest.ts"
import { type Clerk, ELECTION_TIMEOUT_MS, KvLab } from "./support/kvLab.ts"
import { kvTest } from "./support/kvTest.ts"
import { speedTest } from "./support/speedTest.ts"

const FILE = "packages/kvraft/test/kv4a.test.ts"
const base = { unreliable: false, crash: false, partitions: false, maxRaftStateBytes: -1, randomKeys: false }

describe("4A: key/value service without snapshots", () => {
  kvTest("one client (TestBasic4A)", FILE, (seed) => genericTest({ ...base, seed, nclients: 1, nservers: 5 }))

  kvTest("ops complete fast enough (TestSpeed4A)", FILE, (seed) =>
    new KvLab(3, { seed, maxRaftStateBytes: -1 }).run((lab) => speedTest(lab, "")),
  )

  kvTest("many clients (TestConcurrent4A)", FILE, (seed) => genericTest({ ...base, seed, nclients: 5, nservers: 5 }))

  kvTest("unreliable net, many clients (TestUnreliable4A)", FILE, (seed) =>
    genericTest({ ...base, seed, nclients: 5, nservers: 5, unreliable: true }),
  )

  kvTest("concurrent append to same key, unreliable (TestUnreliableOneKey4A)", FILE, (seed) =>
    new KvLab(3, { seed, unreliable: true, maxRaftStateBytes: -1 }).run(async (lab) => {
      const ck = await lab.makeClerk()
      await lab.put(ck, "k", "")
      const nclient = 5
      const upto = 10
      const clerks: Clerk[] = []
      for (let c = 0; c < nclient; c++) clerks.push(await lab.makeClerk())
      await Promise.all(
        clerks.map(async (clerk, me) => {
          for (let n = 0; n < upto; n++) await lab.append(clerk, "k", `x ${me} ${n} y`)
        }),
      )
      const v = await lab.get(ck, "k")
      for (let me = 0; me < nclient; me++) checkClientAppends(me, v, upto)
      // Nothing but those appends: no element twice, none invented.
      let expected = 0
      for (let me = 0; me < nclient; me++) for (let n = 0; n < upto; n++) expected += `x ${me} ${n} y`.length
      expect(v.length).toBe(expected)
      lab.checkLinearizable()
    }),
  )

  kvTest("progress in majority; no progress in minority; completion after heal (TestOnePartition4A)", FILE, (seed) =>
    new KvLab(5, { seed, maxRaftStateBytes: -1 }).run(async (lab) => {
      const ck = await lab.makeClerk()
      await lab.put(ck, "1", "13")
      const { p1, p2 } = await lab.makePartition()
      lab.partition(p1, p2)
      const ckp1 = await lab.makeClerk(p1)
      const ckp2a = await lab.makeClerk(p2)
      const ckp2b = await lab.makeClerk(p2)
      await lab.put(ckp1, "1", "14")
      expect(await lab.get(ckp1, "1")).toBe("14")
      let done0 = false
      let done1 = false
      const put = lab.put(ckp2a, "1", "15").then(() => {
        done0 = true
      })
      const get = lab.get(ckp2b, "1").then(() => {
        done1 = true
      })
      await lab.sleep(1_000)
      expect(done0).toBe(false) // a Put in the minority must not complete
      expect(done1).toBe(false) // nor a Get: a deposed leader must not answer
      expect(await lab.get(ckp1, "1")).toBe("14")
      await lab.put(ckp1, "1", "16")
      expect(await lab.get(ckp1, "1")).toBe("16")
      lab.connectAll()
      lab.connectAllClerks([ckp2a, ckp2b])
      await lab.sleep(ELECTION_TIMEOUT_MS)
      const healed = lab.now()
      await put
      expect(lab.now() - healed).toBeLessThan(3_000)
      expect(await lab.get(ck, "1")).toBe("15")
      await get
      lab.checkLinearizable()
    }),
  )

  kvTest("partitions, one client (TestManyPartitionsOneClient4A)", FILE, (seed) =>
    genericTest({ ...base, seed, nclients: 1, nservers: 5, partitions: true }),
  )
  kvTest("partitions, many clients (TestManyPartitionsManyClients4A)", FILE, (seed) =>
    genericTest({ ...base, seed, nclients: 5, nservers: 5, partitions: true }),
  )
  kvTest("restarts, one client (TestPersistOneClient4A)", FILE, (seed) =>
    genericTest({ ...base, seed, nclients: 1, nservers: 5, crash: true }),
  )
  kvTest("restarts, many clients (TestPersistConcurrent4A)", FILE, (seed) =>
    genericTest({ ...base, seed, nclients: 5, nservers: 5, crash: true }),
  )
  kvTest("unreliable net, restarts, many clients (TestPersistConcurrentUnreliable4A)", FILE, (seed) =>
    genericTest({ ...base, seed, nclients: 5, nservers: 5, crash: true, unreliable: true }),
  )
  kvTest("restarts, partitions, many clients (TestPersistPartition4A)", FILE, (seed) =>
    genericTest({ ...base, seed, nclients: 5, nservers: 5, crash: true, partitions: true }),
  )
  kvTest("unreliable net, restarts, partitions, many clients (TestPersistPartitionUnreliable4A)", FILE, (seed) =>
    genericTest({ ...base, seed, nclients: 5, nservers: 5, crash: true, partitions: true, unreliable: true }),
  )
  kvTest(
    "unreliable net, restarts, partitions, random keys, many clients (TestPersistPartitionUnreliableLinearizable4A)",
    FILE,
    (seed) =>
      genericTest({
        ...base,
        seed,
        nclients: 15,
        nservers: 7,
        crash: true,
        partitions: true,
        unreliable: true,
        randomKeys: true,
      }),
  )
})
