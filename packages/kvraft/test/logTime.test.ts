/**
 * Proves that session expiry does not depend on one replica's wall clock: log time advances by
 * the clamped difference between consecutive leader stamps, so a leader whose clock is hours
 * ahead or behind neither expires active sessions nor lets a retried write apply twice, while
 * time under one leader flows at its real rate.
 */
import { describe, expect, test } from "bun:test"
import { encode } from "@msgpack/msgpack"
import { ClientSessions, type KvCommand, type KvOp, KvStateMachine, okResult } from "../src/stateMachine/index.ts"

const HOUR = 3_600_000
const ttl = HOUR
const step = 30_000
const limits = { sessionTtlMs: ttl, maxLogTimeStepMs: step }

const append = (key: string, value: string): KvOp => ({ op: "append", key, value })

const command = (clientId: number, seq: number, ackedBelow: number, op: KvOp, nowMs: number): KvCommand => ({
  clientId,
  seq,
  ackedBelow,
  nowMs,
  op,
})

/** Eight sequential clients, each having written seqs 1..3 under a leader whose clock reads `from`.. */
const busyMachine = (from: number): KvStateMachine => {
  const machine = new KvStateMachine(limits)
  let now = from
  for (let seq = 1; seq <= 3; seq++) {
    for (let client = 1; client <= 8; client++) {
      now += 100
      expect(machine.apply(command(client, seq, seq, append(`k${client}`, `${seq},`), now))).toEqual({ ok: true })
    }
  }
  return machine
}

describe("log time", () => {
  test("a new leader whose clock is two hours ahead expires no active session", () => {
    const t0 = 1_700_000_000_000
    const machine = busyMachine(t0)
    // The leader changes: the new one's clock reads two hours later than the old one's.
    const ahead = t0 + 2 * HOUR
    for (let client = 1; client <= 8; client++) {
      const result = machine.apply(command(client, 4, 4, append(`k${client}`, "4,"), ahead + client))
      expect(result).toEqual({ ok: true })
    }
    expect(machine.sessions.count()).toBe(8)
    for (let client = 1; client <= 8; client++) expect(machine.get(`k${client}`)).toBe("1,2,3,4,")
    expect(machine.sessions.logTimeMs - t0).toBeLessThan(step + 10_000)
  })

  test("a retried write reaching a leader whose clock is hours ahead is answered, not applied again", () => {
    const t0 = 1_700_000_000_000
    const machine = busyMachine(t0)
    // Every client's seq 3 reply was lost; they retry (still ackedBelow 3) at a leader two hours ahead.
    for (let client = 1; client <= 8; client++) {
      expect(machine.apply(command(client, 3, 3, append(`k${client}`, "3,"), t0 + 2 * HOUR))).toEqual({ ok: true })
    }
    for (let client = 1; client <= 8; client++) expect(machine.get(`k${client}`)).toBe("1,2,3,")
  })

  test("a leader whose clock is hours behind adds nothing, and from there time flows at its rate", () => {
    const t0 = 1_700_000_000_000
    const sessions = new ClientSessions(limits)
    sessions.check(1, 1, 1, t0)
    sessions.record(1, 1, okResult, t0)
    const start = sessions.logTimeMs
    const behind = t0 - 2 * HOUR
    sessions.check(2, 1, 1, behind)
    sessions.record(2, 1, okResult, behind)
    expect(sessions.logTimeMs).toBe(start)
    // Client 2 keeps writing every 10 s of the new leader's clock for a little over an hour:
    // client 1, idle all along, expires after one hour, not after three.
    let seq = 2
    for (let now = behind + 10_000; now <= behind + ttl + 20_000; now += 10_000) {
      sessions.check(2, seq, seq, now)
      sessions.record(2, seq, okResult, now)
      seq++
    }
    expect(sessions.logTimeMs - start).toBe(ttl + 20_000)
    expect(sessions.count()).toBe(1)
    expect(sessions.check(1, 2, 2, behind + ttl + 20_001)).toMatchObject({ result: { error: "SessionExpired" } })
  })

  test("leaders hours apart taking turns add at most one step per change", () => {
    const sessions = new ClientSessions(limits)
    const clocks = [1_700_000_000_000, 1_700_000_000_000 + 3 * HOUR, 1_700_000_000_000 - 5 * HOUR]
    const start = 1_700_000_000_000
    let changes = 0
    for (let i = 0; i < 90; i++) {
      const leader = i % 3
      if (i > 0) changes++
      const now = clocks[leader]! + i * 10
      sessions.check(1, i + 1, i + 1, now)
      sessions.record(1, i + 1, okResult, now)
    }
    expect(sessions.logTimeMs - start).toBeLessThanOrEqual(changes * step)
    // Eighty-nine leader changes moved log time by at most 89 steps: under the TTL.
    expect(sessions.logTimeMs - start).toBeLessThan(ttl)
  })

  test("under one leader, log time is its clock's elapsed time", () => {
    const sessions = new ClientSessions(limits)
    const t0 = 5_000_000
    for (let i = 0; i <= 100; i++) sessions.expire(t0 + i * 1_234)
    expect(sessions.logTimeMs).toBe(t0 + 100 * 1_234)
  })

  test("replicas, and a replica restored from a snapshot half-way, compute the same log time", () => {
    const commands: KvCommand[] = []
    let now = 1_700_000_000_000
    for (let i = 0; i < 300; i++) {
      // A leader change every 50 commands, with clocks up to 3 hours apart either way.
      const skew = (((i / 50) | 0) % 3) * HOUR * (i % 100 < 50 ? 1 : -1)
      now += 700
      const client = 1 + (i % 6)
      const seq = 1 + ((i / 6) | 0)
      commands.push(command(client, seq, seq, append(`k${client}`, `${seq},`), Math.max(0, now + skew)))
    }
    const a = new KvStateMachine(limits)
    const resultsA = commands.map((cmd) => a.apply(cmd))
    expect(resultsA.every((result) => result.ok)).toBe(true)
    const b0 = new KvStateMachine(limits)
    const resultsB = commands.slice(0, 150).map((cmd) => b0.apply(cmd))
    const b = KvStateMachine.restore(b0.snapshot(), limits)
    resultsB.push(...commands.slice(150).map((cmd) => b.apply(cmd)))
    expect(resultsB).toEqual(resultsA)
    expect(b.sessions.logTimeMs).toBe(a.sessions.logTimeMs)
    expect(b.snapshot()).toEqual(a.snapshot())
  })

  test("a snapshot in the older form (log time was the largest stamp) is still read", () => {
    // [version, data, [logTimeMs, sessions]] as written before log time was clamped.
    const old = new KvStateMachine(limits)
    old.apply(command(7, 1, 1, append("k", "a"), 2_000_000))
    const [logTimeMs, sessions] = old.sessions.toSnapshot()
    const restored = KvStateMachine.restore(encode([1, ["k", "a"], [logTimeMs, sessions]]), limits)
    expect(restored.get("k")).toBe("a")
    expect(restored.apply(command(7, 1, 1, append("k", "a"), 2_000_100))).toEqual({ ok: true })
    expect(restored.get("k")).toBe("a")
    expect(restored.sessions.logTimeMs).toBe(2_000_100)
  })
})
