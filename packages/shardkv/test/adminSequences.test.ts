/**
 * Proves that admin sequences outside the lab's paths lose nothing: when every group leaves, the
 * shards stay parked at their last owner, and whichever group is given them next gets them whole.
 */
import { describe, expect } from "bun:test"
import { labTest, waitUntil } from "./support/labTest.ts"
import { labKeys, randstring } from "./support/shardLab.ts"

const FILE = "packages/shardkv/test/adminSequences.test.ts"

describe("admin sequences", () => {
  labTest(
    "every group leaves, then another group joins: it gets every key",
    FILE,
    { maxRaftStateBytes: 4_000 },
    async ({ lab, random }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      await lab.join(1)
      const keys = labKeys(30)
      const values = keys.map(() => randstring(20, () => random.next()))
      for (let i = 0; i < keys.length; i++) await lab.put(ck, keys[i]!, values[i]!)

      await lab.leave(0, 1)
      const parked = (await lab.query()).num
      // Both groups reach the configuration with no group and keep their shards, frozen.
      const parkedShards = () =>
        [0, 1].flatMap((gi) => {
          const caughtUp = lab.groups[gi]!.servers.find((s) => s?.machine().config.num === parked)
          return caughtUp?.machine().shardStates() ?? []
        })
      await waitUntil(lab, "both groups parked their shards", 20_000, () => parkedShards().length === 20)
      expect(parkedShards().filter((state) => state === "Parked").length).toBe(10)

      await lab.join(2)
      for (let i = 0; i < keys.length; i++) await lab.check(ck, keys[i]!, values[i]!)
      // Writes go on at the new owner, exactly once.
      for (let i = 0; i < keys.length; i++) await lab.append(ck, keys[i]!, "+")
      for (let i = 0; i < keys.length; i++) await lab.check(ck, keys[i]!, `${values[i]!}+`)
      // The parked copies are deleted once the new owner has them.
      await waitUntil(lab, "the old owners dropped their parked copies", 20_000, () =>
        [0, 1].every((gi) =>
          lab.groups[gi]!.servers.every(
            (s) =>
              s === undefined ||
              s
                .machine()
                .shardStates()
                .every((x) => x === "Absent"),
          ),
        ),
      )
      lab.checkLinearizable()
    },
  )

  labTest(
    "every group leaves, then one of them joins again: nothing is lost",
    FILE,
    { maxRaftStateBytes: -1 },
    async ({ lab, random }) => {
      const ck = await lab.makeClient()
      await lab.join(0)
      const keys = labKeys(30)
      const values = keys.map(() => randstring(20, () => random.next()))
      for (let i = 0; i < keys.length; i++) await lab.put(ck, keys[i]!, values[i]!)
      await lab.leave(0)
      await lab.join(1)
      await lab.join(0)
      const latest = (await lab.query()).num
      await waitUntil(lab, "both groups reached the latest configuration", 20_000, () =>
        [0, 1].every((gi) => lab.groups[gi]!.servers.every((s) => s?.machine().config.num === latest)),
      )
      for (let i = 0; i < keys.length; i++) await lab.check(ck, keys[i]!, values[i]!)
      lab.checkLinearizable()
    },
  )
})
