/**
 * Proves that a member cut off while the group added a node, which then became leader, catches up
 * once the partition heals: it learns the new leader's address from a member it knows (thesis §4.1:
 * a lagging member must hear a leader its log does not name yet). And that the rule which lets it
 * does not let a forger in: a datagram claiming a known member from another address, or an id no
 * member names, is still dropped, and moves neither term nor address.
 */
import { expect, test } from "bun:test"
import { seedFromEnv } from "@kv/rpc"
import { address, NodeGroup } from "./support/nodeGroup.ts"

const FILE = "packages/raft/test/node-lagging-member.test.ts"

test("a member cut off while the group added its next leader catches up after healing; forgers stay unheard", async () => {
  const seed = seedFromEnv()
  const g = new NodeGroup(seed)
  const peers = { 1: address(1), 2: address(2), 3: address(3) }
  try {
    await g.run(async () => {
      for (const id of [1, 2, 3]) await g.start(id, peers)
      // Node 4 joins knowing only where the group is; no one will tell the lagging node where 4 lives.
      await g.start(4, { ...peers, 4: address(4) }, true)
      await g.commit([1, 2, 3], "before")

      // A follower is cut off for the whole change; the other two and node 4 go on.
      const first = g.leader([1, 2, 3]) as number
      const lagging = [1, 2, 3].find((id) => id !== first) as number
      const others = [1, 2, 3].filter((id) => id !== lagging)
      g.network.disconnect(address(lagging))
      await g.driver.promise(g.node(first).addLearner(4, address(4)))
      await g.driver.promise(g.node(first).promote(4))
      await g.commit([...others, 4], "with 4 a voter")
      await g.driver.promise(g.node(first).transferLeadership(4))
      await g.waitFor("node 4 to lead", () => g.leader([...others, 4]) === 4)
      const last = await g.commit([...others, 4], "under 4")
      const addresses = () =>
        g
          .node(lagging)
          .status()
          .members.map((m) => [m.id, m.address])
      expect(addresses()).toEqual([
        [1, address(1)],
        [2, address(2)],
        [3, address(3)],
      ])

      // Healed: 4's heartbeats reach a node whose log names no address for 4.
      g.network.connect(address(lagging))
      await g.waitFor(`node ${lagging} to apply entry ${last} from leader 4`, () =>
        g.running(lagging).applied.includes(last),
      )
      expect(g.node(lagging).status()).toMatchObject({ leader: 4, role: "follower", member: "voter" })
      expect(addresses()).toEqual([
        [1, address(1)],
        [2, address(2)],
        [3, address(3)],
        [4, address(4)],
      ])
      await g.commit([1, 2, 3, 4], "all four")

      // Forgeries from an address no member has: one for a member the node knows, one for an id
      // no member names. Each claims a later term; heard, either would move the node's term.
      const forge = await g.forger("forger")
      const { term, commitIndex } = g.node(lagging).status()
      const drops = () => g.running(lagging).rpc.transport.stats.drops.wrongSender
      const before = drops()
      forge(lagging, [{ type: "Heartbeat", from: 1, to: lagging, term: term + 5, commit: commitIndex, context: 0 }])
      forge(lagging, [{ type: "Heartbeat", from: 9, to: lagging, term: term + 5, commit: commitIndex, context: 0 }])
      await g.waitFor("both forgeries dropped", () => drops() >= before + 2)
      // Long enough for the node to ask its members about id 9 (none names it) and for 4 to lead on.
      await g.driver.sleep(2_000)
      forge(lagging, [{ type: "Heartbeat", from: 9, to: lagging, term: term + 5, commit: commitIndex, context: 0 }])
      await g.waitFor("the repeated forgery dropped", () => drops() >= before + 3)
      expect(g.node(lagging).status()).toMatchObject({ term, leader: 4 })
      expect(addresses()).toEqual([
        [1, address(1)],
        [2, address(2)],
        [3, address(3)],
        [4, address(4)],
      ])
      await g.commit([1, 2, 3, 4], "after the forgeries")
    })
  } catch (error) {
    console.error(`failed; replay: KV_SEED=${seed} bun test ${FILE}`)
    throw error
  } finally {
    await g.close()
  }
}, 60_000)
