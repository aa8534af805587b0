/**
 * Proves that a busy leader keeps compacting and answering linearizable reads while commands keep
 * coming: with the flush off the event loop, inputs arriving during every flush leave the next
 * Ready waiting, so the shell's inner loop may never run dry under steady load; read rounds,
 * compaction and learning new members must not wait for it to. Three nodes in virtual time, a
 * 2 ms disk, a command every millisecond for 3 s; every node snapshots every 100 applied commands,
 * as the RSM does when its log grows, and the leader is asked for a read every 100 ms.
 */
import { expect, test } from "bun:test"
import { Effect } from "effect"
import { address, NodeGroup } from "./support/nodeGroup.ts"

const SNAPSHOT_EVERY = 100
const LOAD_MS = 3_000

test("snapshots taken under steady load compact the log while the load goes on", async () => {
  const pending: { id: number; index: number }[] = []
  const group = new NodeGroup(4242, {
    flushDelay: Effect.sleep(2),
    onApply: (id, index) => {
      if (index % SNAPSHOT_EVERY === 0) pending.push({ id, index })
    },
  })
  const peers = { 1: address(1), 2: address(2), 3: address(3) }
  const ids = [1, 2, 3]
  let proposed = 0
  const snapshotIndexes: number[] = []
  try {
    await group.run(async () => {
      for (const id of ids) await group.start(id, peers)
      await group.commit(ids, "first")
      for (let ms = 0; ms < LOAD_MS; ms++) {
        const leader = group.leader(ids)
        if (leader !== undefined) group.node(leader).proposeUnsafe(new TextEncoder().encode(`command ${proposed++}`))
        // The service snapshots from its apply callback; the data stands for its state.
        for (const { id, index } of pending.splice(0)) {
          await group.driver.promise(group.node(id).snapshot(index, new Uint8Array([index & 0xff])))
        }
        await group.driver.sleep(1)
      }
      // Measured while the load is still on: nothing has had a quiet moment to catch up.
      for (const id of ids) snapshotIndexes.push(group.node(id).status().snapshotIndex)
    })
  } finally {
    await group.close()
  }
  console.log(`compact under load: ${proposed} commands proposed, snapshot indexes ${snapshotIndexes.join(", ")}`)
  expect(proposed).toBeGreaterThan(LOAD_MS / 2)
  // Each node compacted to within a few snapshots of the end, not at some early quiet moment only.
  for (const index of snapshotIndexes) expect(index).toBeGreaterThan(proposed - 10 * SNAPSHOT_EVERY)
}, 60_000)

test("a linearizable read asked under steady load is answered while the load goes on", async () => {
  const group = new NodeGroup(4243, { flushDelay: Effect.sleep(2) })
  const peers = { 1: address(1), 2: address(2), 3: address(3) }
  const ids = [1, 2, 3]
  const answers: { askedAt: number; answeredAt: number }[] = []
  let asked = 0
  let now = 0
  try {
    await group.run(async () => {
      for (const id of ids) await group.start(id, peers)
      await group.commit(ids, "first")
      for (let ms = 0; ms < LOAD_MS; ms++) {
        now = ms
        const leader = group.leader(ids)
        if (leader !== undefined) {
          group.node(leader).proposeUnsafe(new TextEncoder().encode(`command ${ms}`))
          if (ms % 100 === 50) {
            const askedAt = ms
            asked++
            group.node(leader).readIndexWith((outcome) => {
              if (typeof outcome === "number") answers.push({ askedAt, answeredAt: now })
            })
          }
        }
        await group.driver.sleep(1)
      }
    })
  } finally {
    await group.close()
  }
  const slowest = Math.max(0, ...answers.map((a) => a.answeredAt - a.askedAt))
  console.log(`reads under load: ${answers.length} of ${asked} answered during the load, slowest ${slowest} ms`)
  expect(asked).toBeGreaterThan(20)
  // Each read needs one heartbeat round: a few flushes and round trips, not the end of the load.
  expect(answers.length).toBeGreaterThanOrEqual(asked - 1)
  expect(slowest).toBeLessThan(200)
}, 60_000)
