/** Lab 4B: the KV service with snapshots (log compaction). */
import { describe, expect } from "bun:test"
import { genericTest } from "./support/genericTest.ts"
import { KvLab } from "./support/kvLab.ts"
import { kvTest } from "./support/kvTest.ts"
import { speedTest } from "./support/speedTest.ts"

const FILE = "packages/kvraft/test/kv4b.test.ts"
const MAX_RAFT_STATE = 1000
const base = {
  unreliable: false,
  crash: false,
  partitions: false,
  maxRaftStateBytes: MAX_RAFT_STATE,
  randomKeys: false,
}

describe("4B: key/value service with snapshots", () => {
  kvTest("InstallSnapshot RPC (TestSnapshotRPC4B)", FILE, (seed) =>
    new KvLab(3, { seed, maxRaftStateBytes: MAX_RAFT_STATE }).run(async (lab) => {
      const ck = await lab.makeClerk()
      await lab.put(ck, "a", "A")
      expect(await lab.get(ck, "a")).toBe("A")
      // A minority partition: the majority advances far enough to snapshot past server 2's log.
      lab.partition([0, 1], [2])
      const ck1 = await lab.makeClerk([0, 1])
      for (let i = 0; i < 50; i++) await lab.put(ck1, String(i), String(i))
      await lab.sleep(1_000)
      await lab.put(ck1, "b", "B")
      expect(lab.logSize()).toBeLessThanOrEqual(8 * MAX_RAFT_STATE)
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
      expect(lab.logSize()).toBeLessThanOrEqual(8 * MAX_RAFT_STATE)
      lab.checkLinearizable()
    }),
  )

  kvTest("snapshot size is reasonable (TestSnapshotSize4B)", FILE, (seed) =>
    // The lab's bound counts the store alone: the watch history is kept to one event here (its own
    // bound is tested in watch.history.test.ts).
    new KvLab(3, { seed, maxRaftStateBytes: MAX_RAFT_STATE, limits: { watchHistoryEvents: 1 } }).run(async (lab) => {
      const maxSnapshotState = 500
      const ck = await lab.makeClerk()
      for (let i = 0; i < 200; i++) {
        await lab.put(ck, "x", "0")
        expect(await lab.get(ck, "x")).toBe("0")
        await lab.put(ck, "x", "1")
        expect(await lab.get(ck, "x")).toBe("1")
      }
      console.log(`Raft state ${lab.logSize()} B, snapshot ${lab.snapshotSize()} B`)
      expect(lab.logSize()).toBeLessThanOrEqual(8 * MAX_RAFT_STATE)
      expect(lab.snapshotSize()).toBeLessThanOrEqual(maxSnapshotState)
    }),
  )

  kvTest("ops complete fast enough with snapshots (TestSpeed4B)", FILE, (seed) =>
    new KvLab(3, { seed, maxRaftStateBytes: MAX_RAFT_STATE }).run((lab) => speedTest(lab, " with snapshots")),
  )

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
