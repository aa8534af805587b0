/** Proves that a leader resends an unanswered Append after about its follower's measured round trip, not on the heartbeat. */
import { describe, expect, test } from "bun:test"
import type { Append, Message, RaftCore } from "../src/core/index.ts"
import { ackAppends, enc, makeLeader, messagesOfType, newCore, sent, takeReady } from "./support/simCluster.ts"

const HEARTBEAT_TICKS = 10

/** Everything the core sends now (its Readies taken), Appends only. */
const appendsOut = (core: RaftCore): Append[] => {
  const out: Message[] = []
  while (core.hasReady()) out.push(...sent(takeReady(core)))
  return messagesOfType(out, "Append")
}

/** A leader of 1, 2, 3 whose followers have answered Appends within a tick `samples` times. */
const measuredLeader = (samples: number): RaftCore => {
  const core = newCore(1, [1, 2, 3], { heartbeatTicks: HEARTBEAT_TICKS, electionTicks: 30 })
  ackAppends(core, sent(makeLeader(core)))
  for (let i = 0; i < samples; i++) {
    core.propose(enc(`warm ${i}`))
    const appends = appendsOut(core)
    core.tick()
    ackAppends(core, appends)
  }
  return core
}

/** Ticks until the leader sends follower 2 an Append again; how many ticks that took (at most `max`). */
const ticksUntilResendTo2 = (core: RaftCore, max: number): number => {
  for (let t = 1; t <= max; t++) {
    core.tick()
    if (appendsOut(core).some((m) => m.to === 2)) return t
  }
  return Number.POSITIVE_INFINITY
}

describe("resending an unacknowledged Append", () => {
  test("a lost Append is sent again after the measured round trip, well before the next heartbeat", () => {
    const core = measuredLeader(8)
    core.propose(enc("lost to 2"))
    const appends = appendsOut(core)
    expect(appends.map((m) => m.to).sort()).toEqual([2, 3])
    // Follower 3 answers; follower 2's copy was lost.
    ackAppends(
      core,
      appends.filter((m) => m.to === 3),
    )
    const ticks = ticksUntilResendTo2(core, HEARTBEAT_TICKS - 1)
    expect(ticks).toBeLessThanOrEqual(3)
  })

  test("the resent Append carries what follower 2 is missing, and its answer restores pipelining", () => {
    const core = measuredLeader(8)
    core.propose(enc("lost to 2"))
    const lastIndex = Math.max(...appendsOut(core).map((m) => m.prevIndex + m.entries.length))
    let resent: Append[] = []
    for (let t = 0; t < HEARTBEAT_TICKS && resent.length === 0; t++) {
      core.tick()
      resent = appendsOut(core).filter((m) => m.to === 2)
    }
    expect(resent.length).toBe(1)
    expect(resent[0]!.prevIndex + resent[0]!.entries.length).toBe(lastIndex)
    ackAppends(core, resent)
    expect(core.status().progress?.find((p) => p.id === 2)).toMatchObject({ match: lastIndex, state: "replicate" })
  })

  test("each resend without an answer waits twice as long", () => {
    const core = measuredLeader(8)
    core.propose(enc("lost to 2"))
    appendsOut(core)
    const first = ticksUntilResendTo2(core, HEARTBEAT_TICKS - 1)
    const second = ticksUntilResendTo2(core, HEARTBEAT_TICKS - 1)
    expect(first).toBeLessThan(HEARTBEAT_TICKS / 2)
    expect(second).toBe(2 * first)
  })

  test("before any round trip is measured, nothing is resent before the heartbeat", () => {
    const core = newCore(1, [1, 2, 3], { heartbeatTicks: HEARTBEAT_TICKS, electionTicks: 30 })
    makeLeader(core)
    // Neither follower has answered anything: the probes stay out until the heartbeat.
    expect(ticksUntilResendTo2(core, HEARTBEAT_TICKS - 1)).toBe(Number.POSITIVE_INFINITY)
  })
})
