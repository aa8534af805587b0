/**
 * Proves that a leader whose own disk is slow does not hold back what its followers' disks have
 * made durable: a command committed by the two followers' writes is applied on the leader (and its
 * caller answered) in about the followers' time, not after the leader's flush. One client at a
 * time, three nodes in virtual time; every datagram is checked against what its sender's disk holds.
 */
import { expect, test } from "bun:test"
import { Effect } from "effect"
import { address, NodeGroup } from "./support/nodeGroup.ts"

const SLOW_FLUSH_MS = 40
const FAST_FLUSH_MS = 2
const COMMANDS = 30

test(`a leader with ${SLOW_FLUSH_MS} ms flushes applies in its ${FAST_FLUSH_MS} ms followers' time`, async () => {
  const slow = new Set<number>()
  const appliedAt = new Map<number, number>()
  let leader = 0
  const g = new NodeGroup(11, {
    flushDelayOf: (id) => Effect.suspend(() => Effect.sleep(slow.has(id) ? SLOW_FLUSH_MS : FAST_FLUSH_MS)),
    onApply: (id, index) => {
      if (id === leader && !appliedAt.has(index)) appliedAt.set(index, g.clock.now())
    },
  })
  g.network.setMaxDelay(1)
  const peers = { 1: address(1), 2: address(2), 3: address(3) }
  const ids = [1, 2, 3]
  const latency: number[] = []
  try {
    await g.run(async () => {
      for (const id of ids) await g.start(id, peers)
      await g.commit(ids, "first")
      leader = g.leader(ids) as number
      slow.add(leader)
      for (let k = 0; k < COMMANDS; k++) {
        const proposedAt = g.clock.now()
        const r = g.node(leader).proposeUnsafe(new TextEncoder().encode(`command ${k}`))
        if (!("index" in r)) throw new Error(`proposal ${k} refused: ${r._tag}`)
        await g.waitFor(`command ${k} applied on the leader`, () => appliedAt.has(r.index), 1_000)
        latency.push((appliedAt.get(r.index) as number) - proposedAt)
      }
      expect(g.leader(ids)).toBe(leader)
    })
  } finally {
    await g.close()
  }
  const sorted = [...latency].sort((a, b) => a - b)
  console.log(`propose → applied on the leader (ms): median ${sorted[COMMANDS >> 1]}, max ${sorted.at(-1)}`)
  expect(g.sentBeforeDurable).toEqual([])
  expect(latency).toHaveLength(COMMANDS)
  // Followers' flush plus two network hops; waiting for the leader's own flush costs it whole.
  expect(Math.max(...latency)).toBeLessThan(SLOW_FLUSH_MS / 2)
}, 60_000)
