/**
 * Proves that a kvraft group of real processes grows from 3 voters to 5 (learners first, promoted
 * once caught up) and shrinks back to 3 (the leader removed among others) while clients keep
 * reading and appending, with every acknowledged append present exactly once and a linearizable
 * history; and that a replica whose data directory is lost refuses to start under its old id.
 */
import { afterAll, describe, expect, test } from "bun:test"
import { rmSync } from "node:fs"
import { join } from "node:path"
import { pollUntil, runCommand } from "@kv/testkit"
import type { MemberClientShape } from "../src/index.ts"
import { ClientLoad, MemberCluster, run } from "./membershipCluster.ts"

let cluster: MemberCluster | undefined

afterAll(async () => {
  await cluster?.close()
})

/** Waits until the leader sees `id` caught up (lag small), then promotes it. */
const promoteWhenCaughtUp = async (admin: MemberClientShape, id: number) => {
  await pollUntil(
    `member ${id} to catch up`,
    async () => {
      const m = (await run(admin.list())).members.find((x) => x.id === id)
      return m !== undefined && m.match > 0 && m.lag <= 100
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  )
  await run(admin.change("promote", id))
}

describe("kvraft membership over real processes", () => {
  test("grow 3 → 5 and shrink 5 → 3 under clients; a replica that lost its data refuses its old id", async () => {
    const c = await MemberCluster.create("membership-grow", 3, 2)
    cluster = c
    for (const id of [1, 2, 3]) c.start(id)
    const admin = await c.members()
    const load = await ClientLoad.start(c, 3)
    try {
      await load.whileClientsComplete(30)
      for (const id of [4, 5]) {
        c.start(id)
        await run(admin.change("add-learner", id, c.address(id)))
        await promoteWhenCaughtUp(admin, id)
        await load.whileClientsComplete(20)
      }
      let list = await run(admin.list())
      expect(list.members.filter((m) => m.role !== "learner").map((m) => m.id)).toEqual([1, 2, 3, 4, 5])

      // Shrink: the current leader goes first (it hands leadership over), then a follower.
      const leader = list.members.find((m) => m.role === "leader")!.id
      await run(admin.change("remove", leader))
      await load.whileClientsComplete(20)
      list = await run(admin.list())
      // A bootstrap replica, so that its id's refusal below is certain.
      const follower = list.members.find((m) => m.role === "voter" && m.id <= 3)!.id
      await run(admin.change("remove", follower))
      await load.whileClientsComplete(30)
      list = await run(admin.list())
      expect(list.members.map((m) => m.id).sort()).toEqual(
        [1, 2, 3, 4, 5].filter((id) => id !== leader && id !== follower),
      )
      await load.finish()

      // A surviving bootstrap replica loses its disk: it must not come back under its id.
      const survivor = list.members.map((m) => m.id).find((id) => id <= 3)!
      await c.kill(survivor)
      rmSync(join(c.dir.path, "data", "kvraft", `replica-${survivor - 1}`), { recursive: true, force: true })
      const refused = await runCommand(
        ["bun", join(import.meta.dir, "../bin/kvraft.ts"), "--replica", String(survivor - 1), "--config", c.config],
        { cwd: c.dir.path, timeoutMs: 20_000 },
      )
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain(`acknowledged`)
      expect(refused.stderr).toContain(`--join --id 6`)
      expect(refused.stderr).toContain(`member replace ${survivor} 6`)
      console.log(refused.stderr)
      // A removed one neither: its id was removed from the group.
      await c.kill(follower)
      rmSync(join(c.dir.path, "data", "kvraft", `replica-${follower - 1}`), { recursive: true, force: true })
      const removed = await runCommand(
        ["bun", join(import.meta.dir, "../bin/kvraft.ts"), "--replica", String(follower - 1), "--config", c.config],
        { cwd: c.dir.path, timeoutMs: 20_000 },
      )
      expect(removed.code).toBe(1)
      expect(removed.stderr).toContain(`member ${follower} was removed from the group`)
    } catch (error) {
      await load.abandon()
      c.dumpOutput([1, 2, 3, 4, 5])
      throw error
    }
  }, 120_000)
})
