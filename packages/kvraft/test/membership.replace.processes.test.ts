/**
 * Proves that every replica of a 3-replica kvraft group can be replaced, one at a time, by new
 * members started with --join, while clients keep reading and appending, with another replica
 * killed (kill -9) in the middle of a change: every acknowledged append is present exactly once and
 * the history is linearizable. Ids are single-use: the old ids cannot be added again.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { IdUsedBefore, replaceMember } from "../src/index.ts"
import { ClientLoad, MemberCluster, run } from "./membershipCluster.ts"

let cluster: MemberCluster | undefined

afterAll(async () => {
  await cluster?.close()
})

describe("kvraft membership over real processes", () => {
  test("every replica replaced one at a time under clients, one killed during a change: nothing acknowledged lost", async () => {
    const c = await MemberCluster.create("membership-replace", 3, 3)
    cluster = c
    for (const id of [1, 2, 3]) c.start(id)
    const admin = await c.members()
    const load = await ClientLoad.start(c, 3)
    try {
      await load.whileClientsComplete(30)

      // 1 → 4, the new member started first.
      c.start(4)
      await run(replaceMember(admin, 1, { id: 4, address: c.address(4) }, { onProgress: c.onProgress }))
      await c.kill(1)
      await load.whileClientsComplete(30)

      // 2 → 5, the change started before the new member runs; replica 3 dies hard while 5 catches up.
      const replacing = run(replaceMember(admin, 2, { id: 5, address: c.address(5) }, { onProgress: c.onProgress }))
      await load.whileClientsComplete(10)
      await c.kill(3)
      c.start(5)
      await replacing
      await c.kill(2)
      await load.whileClientsComplete(30)
      c.start(3)
      await load.whileClientsComplete(20)

      // 3 → 6: no bootstrap replica is left afterwards.
      c.start(6)
      await run(replaceMember(admin, 3, { id: 6, address: c.address(6) }, { onProgress: c.onProgress }))
      await c.kill(3)
      await load.whileClientsComplete(40)

      const list = await run(admin.list())
      expect(list.members.map((m) => m.id).sort()).toEqual([4, 5, 6])
      expect(list.members.filter((m) => m.role === "learner")).toEqual([])
      // An old id is never taken again.
      const again = await run(Effect.flip(admin.change("add-learner", 1, c.address(1))))
      expect(again).toBeInstanceOf(IdUsedBefore)

      await load.finish()
    } catch (error) {
      await load.abandon()
      c.dumpOutput([1, 2, 3, 4, 5, 6])
      throw error
    }
  }, 120_000)
})
