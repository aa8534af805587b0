/**
 * Proves that the Raft node's membership operations work end to end over the simulated network in
 * virtual time: a node started to join is added as a learner and caught up, promoted, the leader
 * removes itself and hands over, refusals come back as typed errors, status shows each member's
 * role and lag, and a restarted member finds its membership in its storage.
 */
import { expect, test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { Effect } from "effect"

import { address, NodeGroup } from "./support/nodeGroup.ts"

const FILE = "packages/raft/test/node-membership.test.ts"

test("learner added, caught up and promoted; the leader removes itself and hands over; refusals are typed", async () => {
  const seed = seedFromEnv()
  const random = new SeededRandom(seed)
  const g = new NodeGroup(seed)
  const peers = { 1: address(1), 2: address(2), 3: address(3) }
  try {
    await g.run(async () => {
      for (const id of [1, 2, 3]) await g.start(id, peers)
      // Node 4 joins: it knows where the group is, but does not bootstrap from it.
      await g.start(4, { ...peers, 4: address(4) }, true)
      for (let k = 0; k < 5 + random.int(5); k++) await g.commit([1, 2, 3], `before ${k}`)
      expect(g.node(4).status()).toMatchObject({ member: "joining", lastIndex: 0 })

      const first = g.leader([1, 2, 3]) as number
      const added = await g.driver.promise(g.node(first).addLearner(4, address(4)))
      expect(added.membership.members.map((m) => [m.id, m.role])).toEqual([
        [1, "voter"],
        [2, "voter"],
        [3, "voter"],
        [4, "learner"],
      ])
      const index = await g.commit([1, 2, 3, 4], "after the learner")
      expect(g.node(4).status().member).toBe("learner")
      await g.waitFor("the leader to see the learner caught up", () =>
        g
          .node(first)
          .status()
          .members.some((m) => m.id === 4 && m.match >= index && m.lag === 0),
      )
      expect(
        g
          .node(first)
          .status()
          .members.map((m) => [m.id, m.role]),
      ).toEqual([
        [1, first === 1 ? "leader" : "voter"],
        [2, first === 2 ? "leader" : "voter"],
        [3, first === 3 ? "leader" : "voter"],
        [4, "learner"],
      ])
      // Every replica learned where the new member lives from the configuration entry.
      expect(
        g
          .node(4 === first ? 1 : first)
          .status()
          .members.find((m) => m.id === 4)?.address,
      ).toBe(address(4))

      // Refusals, each with its own type; nothing enters the log.
      const last = g.node(first).status().lastIndex
      const errors = await Promise.all([
        g.driver.promise(Effect.flip(g.node(first).addLearner(2, address(2)))),
        g.driver.promise(Effect.flip(g.node(first).promote(9))),
        g.driver.promise(Effect.flip(g.node(first === 1 ? 2 : 1).promote(4))),
      ])
      expect(errors.map((e) => e._tag)).toEqual(["AlreadyMember", "UnknownMember", "NotLeader"])
      expect(g.node(first).status().lastIndex).toBe(last)

      // Two changes at once: the second is refused while the first is in flight.
      const promoting = g.driver.promise(g.node(first).promote(4))
      const second = await g.driver.promise(Effect.flip(g.node(first).addLearner(5, address(5))))
      expect(second._tag).toBe("ChangeInProgress")
      expect((await promoting).membership.members.find((m) => m.id === 4)?.role).toBe("voter")

      // The leader removes itself: it steps down once that commits, and the others elect a leader.
      const removed = await g.driver.promise(g.node(first).removeMember(first))
      expect(removed.membership.members.map((m) => m.id)).not.toContain(first)
      const rest = [1, 2, 3, 4].filter((id) => id !== first)
      await g.waitFor("a leader among the remaining members", () => g.leader(rest) !== undefined)
      expect(g.node(first).status()).toMatchObject({ role: "follower", member: "removed" })
      await g.commit(rest, "after the leader left")
      // It stays out: no campaign of its own moves the group's term.
      const term = g.node(g.leader(rest) as number).status().term
      await g.driver.sleep(5_000)
      expect(g.node(first).status().role).toBe("follower")
      expect(g.node(g.leader(rest) as number).status().term).toBe(term)

      // A restarted member finds its membership in its storage (the join flag changes nothing now).
      await g.stop(4)
      await g.start(4, { ...peers, 4: address(4) }, true)
      expect(g.node(4).status()).toMatchObject({ member: "voter" })
      expect(
        g
          .node(4)
          .status()
          .members.map((m) => m.id),
      ).toEqual(rest)
      await g.commit(rest, "after the restart")
    })
  } catch (error) {
    console.error(`failed; replay: KV_SEED=${seed} bun test ${FILE}`)
    throw error
  } finally {
    await g.run(async () => {
      for (const id of [...g.nodes.keys()]) await g.stop(id)
    })
  }
}, 60_000)
