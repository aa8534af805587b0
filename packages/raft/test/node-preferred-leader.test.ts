/**
 * A group that names a preferred leader: the member leading when the preferred one arrives hands
 * leadership over once it has held the log for a while, the group elects another while it is down,
 * and it leads again once back and settled, or its replacement at its address does; commands commit
 * throughout. Three nodes in virtual time.
 */
import { expect, test } from "bun:test"
import { Effect } from "effect"
import { PREFERRED_SETTLE_ELECTIONS } from "../src/node/preferredLeader.ts"
import { raftDefaults } from "../src/node/raftNode.ts"
import { address, NodeGroup } from "./support/nodeGroup.ts"

const peers = { 1: address(1), 2: address(2), 3: address(3) }

/** Nodes 1 and 2 start and commit, then node 3: it arrives under a leader that is not it. Returns that leader. */
const startThreeLast = async (g: NodeGroup): Promise<number | undefined> => {
  await g.start(1, peers)
  await g.start(2, peers)
  await g.commit([1, 2], "before 3 starts")
  const first = g.leader([1, 2])
  await g.start(3, peers)
  return first
}

test("leadership goes to the preferred member once it holds the log, and back to it after it was down", async () => {
  const g = new NodeGroup(11, { preferredLeader: 3 })
  try {
    await g.run(async () => {
      // Node 3 starts last, so another node leads first and has to hand over.
      expect(await startThreeLast(g)).toBeDefined()
      await g.waitFor("node 3 leading", () => g.leader([1, 2, 3]) === 3, 10_000)
      await g.commit([1, 2, 3], "under node 3")
      // leader() is status().leader without the status: the leader's own id there, its leader's here.
      for (const id of [1, 2, 3]) expect(g.node(id).leader()).toBe(3)

      // It stays: no hand-over goes anywhere else, and no election follows.
      const term = g.node(3).status().term
      for (let i = 0; i < 20; i++) await g.commit([1, 2, 3], `steady ${i}`)
      await g.driver.sleep(3_000)
      expect(g.leader([1, 2, 3])).toBe(3)
      expect(g.node(3).status().term).toBe(term)

      // Down: the others elect one of themselves and go on committing.
      await g.stop(3)
      for (let i = 0; i < 5; i++) await g.commit([1, 2], `without 3, ${i}`)
      const interim = g.leader([1, 2])
      expect(interim).not.toBe(3)
      for (const id of [1, 2]) expect(g.node(id).leader()).toBe(interim!)
      // Back: it holds the log at once, but leads only once it has held it for a while (a replica
      // back from a restart may still be applying its log), then does.
      await g.start(3, peers)
      const backAt = g.clock.now()
      await g.waitFor("node 3 leading again", () => g.leader([1, 2, 3]) === 3, 10_000)
      expect(g.clock.now() - backAt).toBeGreaterThanOrEqual(
        PREFERRED_SETTLE_ELECTIONS * raftDefaults.electionTicks * raftDefaults.tickMs,
      )
      const last = await g.commit([1, 2, 3], "node 3 back")
      for (const id of [1, 2, 3]) expect(g.running(id).applied.at(-1)).toBe(last)
    })
  } finally {
    await g.close()
  }
  console.log(`seed ${g.seed}`)
})

test("under steady load, leadership goes to a preferred member whose acknowledgements trail the others'", async () => {
  // Node 3's disk is the slowest: the commit index is the others' quorum's, ahead of it at almost every look.
  const g = new NodeGroup(12, {
    preferredLeader: 3,
    flushDelayOf: (id) => Effect.sleep(id === 3 ? 15 : 1),
  })
  try {
    await g.run(async () => {
      await startThreeLast(g)
      let proposed = 0
      await g.waitFor(
        "node 3 leading under load",
        () => {
          const leader = g.leader([1, 2, 3])
          for (let i = 0; leader !== undefined && i < 10; i++) {
            if ("index" in g.node(leader).proposeUnsafe(new TextEncoder().encode(`load ${proposed}`))) proposed++
          }
          return leader === 3
        },
        10_000,
      )
      expect(proposed).toBeGreaterThan(3_000)
      await g.commit([1, 2, 3], "under node 3")
    })
  } finally {
    await g.close()
  }
})

test("a member that replaces the preferred one at its address is preferred in its turn", async () => {
  const g = new NodeGroup(13, { preferredLeader: 3 })
  try {
    await g.run(async () => {
      for (const id of [1, 2, 3]) await g.start(id, peers)
      await g.waitFor("node 3 leading", () => g.leader([1, 2, 3]) === 3, 10_000)
      // Node 3's machine is lost: the others elect one of themselves and remove it.
      await g.stop(3)
      await g.commit([1, 2], "without 3")
      const leader = g.leader([1, 2]) as number
      await g.driver.promise(g.node(leader).removeMember(3))
      // Its replacement, node 4, joins at the same address and becomes a voter.
      await g.start(4, { 1: address(1), 2: address(2), 4: address(3) }, true, address(3))
      await g.driver.promise(g.node(g.leader([1, 2]) as number).addVoter(4, address(3)))
      await g.waitFor("node 4 leading", () => g.leader([1, 2, 4]) === 4, 10_000)
      const last = await g.commit([1, 2, 4], "under node 4")
      for (const id of [1, 2, 4]) expect(g.running(id).applied.at(-1)).toBe(last)
    })
  } finally {
    await g.close()
  }
})

test("without a preferred leader, the member leading when another arrives keeps leading", async () => {
  const g = new NodeGroup(11)
  try {
    await g.run(async () => {
      const first = await startThreeLast(g)
      await g.commit([1, 2, 3], "with 3")
      await g.driver.sleep(3_000)
      expect(g.leader([1, 2, 3])).toBe(first)
    })
  } finally {
    await g.close()
  }
})
