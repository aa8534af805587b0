/**
 * When a leader's periodic heartbeat falls due: every heartbeat it sends, a read round's too, starts
 * the interval again; and a leader past half its interval sends one at once when asked to align with
 * another co-hosted leader's (RaftCore.alignHeartbeat), so their heartbeats share datagrams.
 */
import { expect, test } from "bun:test"
import type { RaftCore } from "../src/core/index.ts"
import { ackAppends, makeLeader, messagesOfType, newCore, sent, takeReady, tickUntil } from "./support/simCluster.ts"

const HEARTBEAT_TICKS = 10

/** A leader of {1,2,3} whose no-op is committed, its heartbeat interval just started. */
const leader = (): RaftCore => {
  const core = newCore(1, [1, 2, 3], { heartbeatTicks: HEARTBEAT_TICKS, electionTicks: 30 })
  ackAppends(core, sent(makeLeader(core)))
  takeReady(core)
  expect(core.role).toBe("leader")
  return core
}

const heartbeatsAfter = (core: RaftCore, ticks: number) => {
  for (let i = 0; i < ticks; i++) core.tick()
  return messagesOfType(sent(takeReady(core)), "Heartbeat")
}

test("a leader sends its periodic heartbeat every heartbeatTicks", () => {
  const core = leader()
  expect(core.ticksUntilDue()).toBe(HEARTBEAT_TICKS)
  expect(heartbeatsAfter(core, HEARTBEAT_TICKS - 1)).toEqual([])
  expect(heartbeatsAfter(core, 1).map((m) => m.to)).toEqual([2, 3])
})

test("a read round's heartbeats start the interval again", () => {
  const core = leader()
  for (let i = 0; i < 6; i++) core.tick()
  expect(core.readIndex(1)).toBe(true)
  expect(messagesOfType(sent(takeReady(core)), "Heartbeat").map((m) => m.context)).toEqual([1, 1])
  expect(core.ticksUntilDue()).toBe(HEARTBEAT_TICKS)
  // Without the reset, the periodic heartbeat would be due 4 ticks after the round.
  expect(heartbeatsAfter(core, HEARTBEAT_TICKS - 1)).toEqual([])
  const beats = heartbeatsAfter(core, 1)
  expect(beats.map((m) => [m.to, m.context])).toEqual([
    [2, 1],
    [3, 1],
  ])
})

test("aligning sends the heartbeat early only past half the interval, and restarts it", () => {
  const core = leader()
  for (let i = 0; i < HEARTBEAT_TICKS / 2 - 1; i++) core.tick()
  expect(core.alignHeartbeat()).toBe(false)
  expect(core.hasReady()).toBe(false)
  core.tick()
  expect(core.alignHeartbeat()).toBe(true)
  const beats = messagesOfType(sent(takeReady(core)), "Heartbeat")
  expect(beats.map((m) => [m.to, m.term, m.commit])).toEqual([
    [2, core.term, core.commitIndex],
    [3, core.term, core.commitIndex],
  ])
  expect(core.ticksUntilDue()).toBe(HEARTBEAT_TICKS)
  // Just sent: asked again, it waits for half an interval.
  expect(core.alignHeartbeat()).toBe(false)
  expect(heartbeatsAfter(core, HEARTBEAT_TICKS - 1)).toEqual([])
  expect(heartbeatsAfter(core, 1)).toHaveLength(2)
})

test("a follower, or a leader without followers, never aligns", () => {
  const follower = newCore(2, [1, 2, 3], { heartbeatTicks: HEARTBEAT_TICKS, electionTicks: 30 })
  for (let i = 0; i < 8; i++) follower.tick()
  expect(follower.alignHeartbeat()).toBe(false)
  const alone = newCore(1, [1], { heartbeatTicks: HEARTBEAT_TICKS, electionTicks: 30 })
  tickUntil(alone, () => alone.role === "leader")
  takeReady(alone)
  for (let i = 0; i < 8; i++) alone.tick()
  while (alone.hasReady()) takeReady(alone)
  expect(alone.alignHeartbeat()).toBe(false)
  expect(alone.hasReady()).toBe(false)
})
