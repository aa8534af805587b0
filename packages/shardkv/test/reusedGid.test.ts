/**
 * Proves that a gid used before cannot wedge the cluster: a group whose data directories were all
 * lost after it left comes back under its gid and takes shards again without stalling the others,
 * and one that lost its data while it still held shards is refused (GidRetired) for good.
 */
import { describe, expect } from "bun:test"
import { labTest, waitUntil } from "./support/labTest.ts"
import { labKeys, randstring, type ShardLab, storageName } from "./support/shardLab.ts"

const FILE = "packages/shardkv/test/reusedGid.test.ts"

/** Stops every replica of group gi and throws its data directories away. */
const wipeGroup = async (lab: ShardLab, gi: number) => {
  await lab.crashGroup(gi)
  for (let i = 0; i < lab.n; i++) lab.processes.disks.delete(storageName(lab.gid(gi), i))
}

const atLatest = async (lab: ShardLab, gis: readonly number[]) => {
  const latest = (await lab.query()).num
  await waitUntil(lab, `groups ${gis.map((gi) => lab.gid(gi)).join(", ")} reach configuration ${latest}`, 20_000, () =>
    gis.every((gi) =>
      lab.groups[gi]!.servers.some((s) => s?.machine().config.num === latest && s.machine().canReconfigure()),
    ),
  )
}

describe("a gid used before", () => {
  for (const joinFirst of [false, true]) {
    const order = joinFirst ? "joined before it starts" : "started, then joined"
    labTest(
      `a group that lost its data after leaving comes back under its gid (${order})`,
      FILE,
      { maxRaftStateBytes: -1 },
      async ({ lab, random }) => {
        const ck = await lab.makeClient()
        await lab.join(0)
        await lab.join(1)
        const keys = labKeys(20)
        const values = keys.map(() => randstring(10, () => random.next()))
        for (let i = 0; i < keys.length; i++) await lab.put(ck, keys[i]!, values[i]!)
        await lab.leave(0)
        await atLatest(lab, [0, 1])
        await waitUntil(lab, "group 100 has handed everything off", 20_000, () =>
          lab.groups[0]!.servers.every((s) =>
            s
              ?.machine()
              .shardStates()
              .every((x) => x === "Absent"),
          ),
        )

        await wipeGroup(lab, 0)
        if (joinFirst) await lab.join(0)
        await lab.restartGroup(0)
        if (!joinFirst) await lab.join(0)
        await atLatest(lab, [0, 1])
        const config = await lab.query()
        expect(config.shards.filter((gid) => gid === lab.gid(0)).length).toBe(5)
        for (let i = 0; i < keys.length; i++) await lab.check(ck, keys[i]!, values[i]!)
        for (let i = 0; i < keys.length; i++) await lab.append(ck, keys[i]!, "!")
        for (let i = 0; i < keys.length; i++) await lab.check(ck, keys[i]!, `${values[i]!}!`)
        lab.checkLinearizable()
      },
    )
  }

  labTest(
    "a group that lost its data while it held shards is refused, and so is its gid",
    FILE,
    { maxRaftStateBytes: -1 },
    async ({ lab, random }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      await lab.join(1)
      const keys = labKeys(10)
      for (const key of keys)
        await lab.put(
          ck,
          key,
          randstring(10, () => random.next()),
        )
      await atLatest(lab, [0, 1])

      await wipeGroup(lab, 0)
      await lab.restartGroup(0)
      await waitUntil(lab, "the new group 100 says it is retired", 20_000, () =>
        lab.groups[0]!.servers.some((s) => s?.status().retired.includes("unused gid")),
      )
      for (const server of lab.groups[0]!.servers) expect(server?.machine().config.num).toBe(0)
      await lab.leave(0)
      await expect(lab.join(0)).rejects.toThrow(/GidRetired|retired/)
    },
  )
})
