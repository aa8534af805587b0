/**
 * Proves that a replica acts while its own write is in flight: with disks taking 20 ms per flush
 * and commands proposed all along (so a leader always has a flush running), a command is applied,
 * on the leader and on the followers, about as soon as the node learns it is committed rather than
 * when the flush in progress ends; reads are answered without waiting for flushes either. Three
 * nodes in virtual time; every datagram is checked against what its sender's disk holds.
 */
import { expect, test } from "bun:test"
import { Effect } from "effect"
import { address, NodeGroup } from "./support/nodeGroup.ts"

const FLUSH_MS = 20
const COMMANDS = 60
const PROPOSE_EVERY_MS = 5

const median = (xs: readonly number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN
}

test(`with ${FLUSH_MS} ms disks, a committed command is applied well before the flush in progress ends`, async () => {
  const appliedAt = new Map<string, number>()
  const g = new NodeGroup(7, {
    flushDelay: Effect.sleep(FLUSH_MS),
    onApply: (id, index) => {
      const key = `${id}:${index}`
      if (!appliedAt.has(key)) appliedAt.set(key, g.clock.now())
    },
  })
  g.network.setMaxDelay(1)
  const peers = { 1: address(1), 2: address(2), 3: address(3) }
  const ids = [1, 2, 3]
  /** When each node first saw each index committed (polled every virtual millisecond). */
  const committedAt = new Map<string, number>()
  const commitLag: number[] = []
  const followerLag: number[] = []
  const readLatency: number[] = []
  try {
    await g.run(async () => {
      for (const id of ids) await g.start(id, peers)
      await g.commit(ids, "first")
      const leader = g.leader(ids) as number
      const proposed: number[] = []
      let nextPropose = 0
      let reads = 0
      for (let ms = 0; ms < COMMANDS * PROPOSE_EVERY_MS + 400; ms++) {
        if (ms >= nextPropose && proposed.length < COMMANDS) {
          nextPropose = ms + PROPOSE_EVERY_MS
          const r = g.node(leader).proposeUnsafe(new TextEncoder().encode(`command ${proposed.length}`))
          if ("index" in r) proposed.push(r.index)
          if (proposed.length % 10 === 0 && reads < COMMANDS / 10) {
            reads++
            const askedAt = g.clock.now()
            g.node(leader).readIndexWith((outcome) => {
              if (typeof outcome === "number") readLatency.push(g.clock.now() - askedAt)
            })
          }
        }
        for (const id of ids) {
          const commit = g.node(id).status().commitIndex
          for (const index of proposed) {
            const key = `${id}:${index}`
            if (index <= commit && !committedAt.has(key)) committedAt.set(key, g.clock.now())
          }
        }
        await g.driver.sleep(1)
      }
      for (const index of proposed) {
        for (const id of ids) {
          const key = `${id}:${index}`
          const committed = committedAt.get(key)
          const applied = appliedAt.get(key)
          if (committed === undefined || applied === undefined) throw new Error(`index ${index} not applied on ${id}`)
          ;(id === leader ? commitLag : followerLag).push(applied - committed)
        }
      }
    })
  } finally {
    await g.close()
  }
  console.log(
    `commit → apply (ms): leader median ${median(commitLag)} max ${Math.max(...commitLag)}; ` +
      `followers median ${median(followerLag)} max ${Math.max(...followerLag)}; ` +
      `read latency median ${median(readLatency)} ms over ${readLatency.length} reads`,
  )
  expect(g.sentBeforeDurable).toEqual([])
  expect(commitLag).toHaveLength(COMMANDS)
  // Polled every millisecond: a command is seen applied within a couple of them of its commit,
  // where waiting for the flush in progress costs half a flush on average.
  expect(median(commitLag)).toBeLessThanOrEqual(2)
  expect(Math.max(...commitLag)).toBeLessThan(FLUSH_MS / 2)
  expect(median(followerLag)).toBeLessThanOrEqual(2)
  // A read needs one heartbeat round: it does not wait for the leader's flush to start it.
  expect(readLatency.length).toBeGreaterThan(0)
  expect(median(readLatency)).toBeLessThan(FLUSH_MS)
}, 60_000)
