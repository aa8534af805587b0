/**
 * What a node tells its storage of each durable write (`WriteHint`): a follower waits for its
 * writes (its answers depend on them), so its storage may flush small ones inline; a leader does
 * not (it acts on proposals, reads and answers during the flush), so its flushes stay off its loop.
 * Three nodes in virtual time; the leader is stopped once, so one node writes in both roles.
 */
import { expect, test } from "bun:test"
import { address, NodeGroup } from "./support/nodeGroup.ts"

interface SeenWrite {
  readonly id: number
  readonly entries: number
  readonly leading: boolean
  readonly callerWaits: boolean | undefined
}

test("followers' writes say the caller waits, a leader's never do, across a change of leader", async () => {
  const writes: SeenWrite[] = []
  const g: NodeGroup = new NodeGroup(11, {
    onWrite: (id, entries, hint) => {
      const running = g.nodes.get(id)
      writes.push({ id, entries, leading: running?.node.leader() === id, callerWaits: hint?.callerWaits })
    },
  })
  const peers = { 1: address(1), 2: address(2), 3: address(3) }
  try {
    await g.run(async () => {
      for (const id of [1, 2, 3]) await g.start(id, peers)
      for (let k = 0; k < 5; k++) await g.commit([1, 2, 3], `first ${k}`)
      const first = g.leader([1, 2, 3])
      if (first === undefined) throw new Error("no leader after five commits")
      await g.stop(first)
      const rest = [1, 2, 3].filter((id) => id !== first)
      for (let k = 0; k < 5; k++) await g.commit(rest, `second ${k}`)
      await g.start(first, peers)
      for (let k = 0; k < 5; k++) await g.commit([1, 2, 3], `third ${k}`)
    })
  } finally {
    await g.close()
  }
  const withEntries = writes.filter((w) => w.entries > 0)
  const byLeaders = withEntries.filter((w) => w.leading)
  const byFollowers = withEntries.filter((w) => !w.leading)
  // Every write carries a hint, and it follows the writer's role at that moment.
  expect(writes.every((w) => w.callerWaits !== undefined)).toBe(true)
  expect(byLeaders.length).toBeGreaterThanOrEqual(10)
  expect(byFollowers.length).toBeGreaterThanOrEqual(20)
  expect(byLeaders.filter((w) => w.callerWaits !== false)).toEqual([])
  expect(byFollowers.filter((w) => w.callerWaits !== true)).toEqual([])
  // Two leaders in turn, and a node that both led and followed.
  const leaders = new Set(byLeaders.map((w) => w.id))
  expect(leaders.size).toBe(2)
  expect([...leaders].some((id) => byFollowers.some((w) => w.id === id))).toBe(true)
})
