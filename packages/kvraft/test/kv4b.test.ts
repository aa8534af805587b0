/** Lab 4B: the KV service with snapshots (log compaction). */
import { describe, expect } from "bun:test"
import { genericTest } from "./support/genericTest.ts"
import { KvLab } from "./support/kvLab.ts"
import { kvTest } from "./support/kvTest.ts"

const FILE = "packages/kvraft/test/kv4b.test.ts"
const base = { unreliable: false, crash: false, partitions: false, maxRaftStateBytes: 1000, randomKeys: false }

describe("4B: key/value service with snapshots", () => {
  kvTest("InstallSnapshot RPC (TestSnapshotRPC4B)", FILE, async (seed) => {
    const maxRaftState = 1000
    const lab = await KvLab.make(3, { seed, maxRaftStateBytes: maxRaftState })
    try {
      const ck = await lab.makeClerk()
      await lab.put(ck, "a", "A")
      expect(await lab.get(ck, "a")).toBe("A")
      // A minority partition: the majority advances far enough to snapshot past server 2's log.
      lab.partition([0, 1], [2])
      const ck1 = await lab.makeClerk([0, 1])
      for (let i = 0; i < 50; i++) await lab.put(ck1, String(i), String(i))
      await Bun.sleep(1_000)
      await lab.put(ck1, "b", "B")
      expect(lab.logSize()).toBeLessThanOrEqual(8 * maxRaftState)
      // Server 0 in a minority with 2, which must catch up through InstallSnapshot to serve.
      lab.partition([0, 2], [1])
      const ck2 = await lab.makeClerk([0, 2])
      await lab.put(ck2, "c", "C")
      await lab.put(ck2, "d", "D")
      expect(await lab.get(ck2, "a")).toBe("A")
      expect(await lab.get(ck2, "b")).toBe("B")
      expect(await lab.get(ck2, "1")).toBe("1")
      expect(await lab.get(ck2, "49")).toBe("49")
      lab.connectAll()
      await lab.put(ck, "e", "E")
      expect(await lab.get(ck, "c")).toBe("C")
      expect(await lab.get(ck, "e")).toBe("E")
      expect(await lab.get(ck, "1")).toBe("1")
      expect(lab.logSize()).toBeLessThanOrEqual(8 * maxRaftState)
      lab.checkLinearizable()
    } finally {
      await lab.cleanup()
    }
  })

  kvTest("snapshot size is reasonable (TestSnapshotSize4B)", FILE, async (seed) => {
    const maxRaftState = 1000
    const maxSnapshotState = 500
    const lab = await KvLab.make(3, { seed, maxRaftStateBytes: maxRaftState })
    try {
      const ck = await lab.makeClerk()
      for (let i = 0; i < 200; i++) {
        await lab.put(ck, "x", "0")
        expect(await lab.get(ck, "x")).toBe("0")
        await lab.put(ck, "x", "1")
        expect(await lab.get(ck, "x")).toBe("1")
      }
      console.log(`Raft state ${lab.logSize()} B, snapshot ${lab.snapshotSize()} B`)
      expect(lab.logSize()).toBeLessThanOrEqual(8 * maxRaftState)
      expect(lab.snapshotSize()).toBeLessThanOrEqual(maxSnapshotState)
    } finally {
      await lab.cleanup()
    }
  })

  kvTest("ops complete fast enough with snapshots (TestSpeed4B)", FILE, async (seed) => {
    const lab = await KvLab.make(3, { seed, maxRaftStateBytes: 1000 })
    try {
      const ck = await lab.makeClerk()
      await lab.put(ck, "x", "")
      const numOps = 1_000
      const start = performance.now()
      for (let i = 0; i < numOps; i++) await lab.append(ck, "x", `x 0 ${i} y`)
      const perOp = (performance.now() - start) / numOps
      console.log(`${numOps} sequential appends with snapshots: ${perOp.toFixed(2)} ms/op`)
      expect(perOp).toBeLessThan(100 / 3)
      const v = await lab.get(ck, "x")
      for (let i = 0; i < numOps; i++) expect(v.includes(`x 0 ${i} y`)).toBe(true)
    } finally {
      await lab.cleanup()
    }
  })

  kvTest("restarts, snapshots, one client (TestSnapshotRecover4B)", FILE, (seed) =>
    genericTest({ ...base, seed, nclients: 1, nservers: 5, crash: true }),
  )
  kvTest("restarts, snapshots, many clients (TestSnapshotRecoverManyClients4B)", FILE, (seed) =>
    genericTest({ ...base, seed, nclients: 20, nservers: 5, crash: true }),
  )
  kvTest("unreliable net, snapshots, many clients (TestSnapshotUnreliable4B)", FILE, (seed) =>
    genericTest({ ...base, seed, nclients: 5, nservers: 5, unreliable: true }),
  )
  kvTest("unreliable net, restarts, snapshots, many clients (TestSnapshotUnreliableRecover4B)", FILE, (seed) =>
    genericTest({ ...base, seed, nclients: 5, nservers: 5, unreliable: true, crash: true }),
  )
  kvTest(
    "unreliable net, restarts, partitions, snapshots, many clients (TestSnapshotUnreliableRecoverConcurrentPartition4B)",
    FILE,
    (seed) => genericTest({ ...base, seed, nclients: 5, nservers: 5, unreliable: true, crash: true, partitions: true }),
  )
  kvTest(
    "unreliable net, restarts, partitions, snapshots, random keys, many clients (TestSnapshotUnreliableRecoverConcurrentPartitionLinearizable4B)",
    FILE,
    (seed) =>
      genericTest({
        ...base,
        seed,
        nclients: 15,
        nservers: 7,
        unreliable: true,
        crash: true,
        partitions: true,
        randomKeys: true,
      }),
  )
})
