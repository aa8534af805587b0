/**
 * What a node tells its storage of each durable write (`WriteHint`, writeHint.ts): a follower waits
 * for its writes (its answers depend on them), so its storage may flush small ones inline; a leader
 * waits only for one client's put (one entry, everything before it committed, no read pending) and
 * otherwise acts during the flush. Three nodes in virtual time; the leader is stopped once, so one
 * node writes in both roles.
 */
import { expect, test } from "bun:test"
import { address, NodeGroup } from "./support/nodeGroup.ts"

type Phase = "one at a time" | "burst" | "read beside a put" | "after a change of leader"

interface SeenWrite {
  readonly id: number
  readonly phase: Phase
  readonly entries: number
  readonly leading: boolean
  readonly callerWaits: boolean | undefined
}

test("followers' writes say the caller waits; a leader's only for one client's put", async () => {
  const writes: SeenWrite[] = []
  let phase: Phase = "one at a time"
  const g: NodeGroup = new NodeGroup(11, {
    onWrite: (id, entries, hint) => {
      const leading = g.nodes.get(id)?.node.leader() === id
      writes.push({ id, phase, entries, leading, callerWaits: hint?.callerWaits })
    },
  })
  const peers = { 1: address(1), 2: address(2), 3: address(3) }
  const all = [1, 2, 3]
  const data = (text: string) => new TextEncoder().encode(text)
  try {
    await g.run(async () => {
      for (const id of all) await g.start(id, peers)
      for (let k = 0; k < 5; k++) await g.commit(all, `one ${k}`)
      const first = g.leader(all)
      if (first === undefined) throw new Error("no leader after five commits")

      phase = "burst"
      const burst = Array.from({ length: 20 }, (_, k) => g.node(first).proposeUnsafe(data(`burst ${k}`)))
      const last = burst.at(-1)
      if (last === undefined || !("index" in last)) throw new Error("the leader refused the burst")
      await g.waitFor("the burst applied everywhere", () =>
        all.every((id) => g.running(id).applied.includes(last.index)),
      )

      phase = "read beside a put"
      let read = false
      g.node(first).readIndexWith(() => {
        read = true
      })
      const put = g.node(first).proposeUnsafe(data("beside a read"))
      if (!("index" in put)) throw new Error("the leader refused the put")
      await g.waitFor(
        "the read and the put",
        () => read && all.every((id) => g.running(id).applied.includes(put.index)),
      )

      phase = "after a change of leader"
      await g.stop(first)
      const rest = all.filter((id) => id !== first)
      for (let k = 0; k < 5; k++) await g.commit(rest, `second ${k}`)
      await g.start(first, peers)
      for (let k = 0; k < 5; k++) await g.commit(all, `third ${k}`)
    })
  } finally {
    await g.close()
  }
  const withEntries = writes.filter((w) => w.entries > 0)
  const byLeaders = (p: Phase) => withEntries.filter((w) => w.leading && w.phase === p)
  // Every write carries a hint; every follower's says it waits.
  expect(writes.every((w) => w.callerWaits !== undefined)).toBe(true)
  const byFollowers = withEntries.filter((w) => !w.leading)
  expect(byFollowers.length).toBeGreaterThanOrEqual(30)
  expect(byFollowers.filter((w) => w.callerWaits !== true)).toEqual([])
  // One put at a time: the leader waits too.
  expect(byLeaders("one at a time").length).toBeGreaterThanOrEqual(5)
  expect(byLeaders("one at a time").filter((w) => w.callerWaits !== true)).toEqual([])
  // A burst: batches of several entries, or one entry behind an uncommitted batch, never wait.
  const burst = byLeaders("burst")
  expect(burst.some((w) => w.entries > 1)).toBe(true)
  expect(burst.filter((w) => w.entries > 1 && w.callerWaits !== false)).toEqual([])
  expect(burst.some((w) => w.callerWaits === false)).toBe(true)
  // A read pending beside the put: the leader does not wait.
  expect(byLeaders("read beside a put").map((w) => w.callerWaits)).toEqual([false])
  // Two leaders in turn, and a node that both led and followed.
  const leaders = new Set(withEntries.filter((w) => w.leading).map((w) => w.id))
  expect(leaders.size).toBe(2)
  expect([...leaders].some((id) => byFollowers.some((w) => w.id === id))).toBe(true)
})
