/**
 * Proves that a leader does not compact its log past what a follower has acknowledged (for a
 * while, and it does compact after): a follower whose disk stalls now and then is probed again
 * from its match when an ack is late, and a leader that had already dropped those entries would
 * send it the whole snapshot instead. Three nodes in virtual time, one follower's flushes taking 1–60 ms, the
 * leader snapshotting every 100 commands while a client keeps 4 commands in flight.
 */
import { expect, test } from "bun:test"
import { Effect } from "effect"
import { address, NodeGroup } from "./support/nodeGroup.ts"

const COMMANDS = 1_000
const SNAPSHOT_EVERY = 100

test("a leader keeps the entries an active follower still lacks instead of sending it snapshots", async () => {
  const seed = Number(process.env.KV_SEED ?? 23)
  console.log(`seed ${seed} (KV_SEED=${seed} replays it)`)
  let stalling = 0
  let draw = seed
  const nextDelay = () => {
    // xorshift: 1–60 ms, mostly short.
    draw ^= draw << 13
    draw ^= draw >>> 17
    draw ^= draw << 5
    const r = (draw >>> 0) % 100
    return r < 80 ? 1 + (r % 4) : 20 + (r % 41)
  }
  let leader = 0
  const appliedOnLeader: number[] = []
  const g = new NodeGroup(seed, {
    flushDelayOf: (id) => Effect.suspend(() => Effect.sleep(id === stalling ? nextDelay() : 1)),
    onApply: (id, index) => {
      if (id === leader) appliedOnLeader.push(index)
    },
  })
  g.network.setMaxDelay(1)
  const peers = { 1: address(1), 2: address(2), 3: address(3) }
  const ids = [1, 2, 3]
  let snapshots = 0
  try {
    await g.run(async () => {
      for (const id of ids) await g.start(id, peers)
      await g.commit(ids, "first")
      leader = g.leader(ids) as number
      stalling = ids.find((id) => id !== leader) as number
      let proposed = 0
      let lastSnapshotAt = 0
      const inFlight: number[] = []
      while (proposed < COMMANDS || inFlight.length > 0) {
        while (proposed < COMMANDS && inFlight.length < 4) {
          const r = g.node(leader).proposeUnsafe(new TextEncoder().encode(`command ${proposed++}`))
          if (!("index" in r)) throw new Error(`proposal refused: ${r._tag}`)
          inFlight.push(r.index)
        }
        const next = inFlight.shift() as number
        await g.waitFor(`command at ${next} applied on the leader`, () => appliedOnLeader.includes(next), 5_000)
        if (next - lastSnapshotAt >= SNAPSHOT_EVERY) {
          lastSnapshotAt = next
          snapshots++
          await g.driver.promise(g.node(leader).snapshot(next, new TextEncoder().encode(`state at ${next}`)))
        }
      }
      expect(g.leader(ids)).toBe(leader)
      // The entries are kept only for a while: the last snapshot is compacted into once the
      // follower has caught up (or a second later).
      await g.waitFor(
        "the leader's log compacted into its last snapshot",
        () => g.node(leader).status().snapshotIndex >= lastSnapshotAt,
        2_000,
      )
    })
  } finally {
    await g.close()
  }
  const sentSnapshots = g.sentTypes.get("Snap") ?? 0
  console.log(`${snapshots} snapshots taken on the leader; snapshot messages sent: ${sentSnapshots}`)
  expect(snapshots).toBeGreaterThanOrEqual(9)
  expect(sentSnapshots).toBe(0)
}, 60_000)
