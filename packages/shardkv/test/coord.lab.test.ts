/**
 * Proves that the sharded service's coordination calls work end to end in the seeded world:
 * conditional writes and transactions over keys sharing a hash tag, a cross-shard transaction
 * refused with nothing written, listings merged from every shard's part, and a shard's revisions
 * going on from where they were after the shard moves to another group.
 */
import { describe, expect } from "bun:test"
import { CrossShard } from "@kv/kvraft"
import { shardOf } from "@kv/shardctrler"
import { Effect } from "effect"
import { labTest } from "./support/labTest.ts"
import { N_SHARDS } from "./support/shardLab.ts"

const FILE = "packages/shardkv/test/coord.lab.test.ts"

describe("coordination primitives on shardkv", () => {
  labTest(
    "CAS, transactions and listings across groups and a shard move",
    FILE,
    { maxRaftStateBytes: 4_000 },
    async ({ lab }) => {
      const { client: kv } = await lab.makeClient()
      await lab.join(0)
      await lab.join(1)

      // Create-if-absent, then an optimistic update on the version read.
      expect(await lab.run(kv.putIf("{acct1}.balance", "100", { ifAbsent: true }))).toMatchObject({ applied: true })
      const entry = await lab.run(kv.getEntry("{acct1}.balance"))
      expect(entry).toMatchObject({ value: "100", version: 1 })
      expect(await lab.run(kv.putIf("{acct1}.balance", "90", { ifVersion: entry!.version }))).toMatchObject({
        applied: true,
      })
      expect(await lab.run(kv.putIf("{acct1}.balance", "80", { ifVersion: entry!.version }))).toMatchObject({
        applied: false,
        entry: { value: "90", version: 2 },
      })

      // A transfer between keys that share the tag: one shard, one revision.
      const transfer = await lab.run(
        kv.txn({
          compare: [{ key: "{acct1}.balance", target: "value", cmp: "==", value: "90" }],
          success: [
            { op: "put", key: "{acct1}.balance", value: "60" },
            { op: "put", key: "{acct1}.savings", value: "30" },
          ],
        }),
      )
      expect(transfer.succeeded).toBe(true)
      const [balance, savings] = await Promise.all([
        lab.run(kv.getEntry("{acct1}.balance")),
        lab.run(kv.getEntry("{acct1}.savings")),
      ])
      expect(balance!.modRevision).toBe(transfer.revision)
      expect(savings!.modRevision).toBe(transfer.revision)

      // Keys of two shards: refused by the client, nothing written.
      let other = "x0"
      for (let i = 1; shardOf(other, N_SHARDS) === shardOf("{acct1}", N_SHARDS); i++) other = `x${i}`
      const refused = await lab.run(
        Effect.flip(
          kv.txn({
            compare: [],
            success: [
              { op: "put", key: "{acct1}.balance", value: "0" },
              { op: "put", key: other, value: "0" },
            ],
          }),
        ),
      )
      expect(refused).toBeInstanceOf(CrossShard)
      expect(await lab.run(kv.get(other))).toBe("")

      // A directory spread over every shard, listed in pages merged from every shard's part.
      const members = Array.from({ length: 25 }, (_, i) => `members/${String(i).padStart(2, "0")}`)
      for (const key of members) await lab.run(kv.put(key, key.toUpperCase()))
      await lab.run(kv.put("membersX", "not under the prefix"))
      const listed: string[] = []
      let after: string | undefined
      for (let page = 0; page < 10; page++) {
        const result = await lab.run(kv.list("members/", { after, limit: 7, keysOnly: page % 2 === 0 }))
        expect(result.entries.length).toBeLessThanOrEqual(7)
        listed.push(...result.entries.map((e) => e.key))
        after = result.next
        if (after === undefined) break
      }
      expect(listed).toEqual(members)
      // A tagged prefix asks its one shard.
      expect((await lab.run(kv.list("{acct1}."))).entries.map((e) => [e.key, e.value])).toEqual([
        ["{acct1}.balance", "60"],
        ["{acct1}.savings", "30"],
      ])

      // Every shard moves to group 2; the shard's revision goes on from where it was. A condition
      // that fails writes nothing and tells the shard's revision.
      const probe = await lab.run(kv.putIf("{acct1}.probe", "", { ifVersion: 99 }))
      expect(probe.applied).toBe(false)
      await lab.join(2)
      await lab.leave(0, 1)
      const moved = await lab.run(kv.getEntry("{acct1}.savings"))
      expect(moved).toEqual(savings)
      const after_ = await lab.run(kv.putIf("{acct1}.savings", "31", { ifModRevision: savings!.modRevision }))
      expect(after_.applied).toBe(true)
      expect(after_.revision).toBe(probe.revision + 1)
      expect((await lab.run(kv.list("members/", { keysOnly: true }))).entries.length).toBe(25)
    },
  )
})
