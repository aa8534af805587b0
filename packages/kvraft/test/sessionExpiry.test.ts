/**
 * Proves that `SessionExpired` means what it says: the write was not applied and never will be.
 * Expired sessions are remembered (bounded, in snapshots and in export/merge) so that late retries
 * are answered exactly; where the table has forgotten, the answer is `OutcomeUnknown`.
 */
import { describe, expect, test } from "bun:test"
import { ClientSessions, type KvCommand, type KvOp, KvStateMachine, okResult } from "../src/stateMachine/index.ts"

const ttl = 60_000
// One leader with a steady clock throughout: every stamp difference is elapsed time.
const limits = { sessionTtlMs: ttl, maxLogTimeStepMs: 100 * ttl }

const append = (key: string, value: string): KvOp => ({ op: "append", key, value })

const command = (clientId: number, seq: number, ackedBelow: number, op: KvOp, nowMs: number): KvCommand => ({
  clientId,
  seq,
  ackedBelow,
  nowMs,
  op,
})

/** Another client's write at `nowMs`, so that log time reaches it. */
const tick = (machine: KvStateMachine, nowMs: number, n: number) =>
  machine.apply(command(1000 + n, 1, 1, append("clock", "."), nowMs))

describe("answers after a session expired", () => {
  test("a retry of a write applied before the session expired gets its result, not SessionExpired", () => {
    const machine = new KvStateMachine(limits)
    // Client 1 has seqs 1 and 2 outstanding; both are applied, both replies are lost.
    machine.apply(command(1, 1, 1, append("k", "a"), 0))
    machine.apply(command(1, 2, 1, append("k", "b"), 0))
    tick(machine, 1, 1)
    tick(machine, ttl + 10, 2)
    expect(machine.sessions.count()).toBe(1)
    expect(machine.apply(command(1, 2, 1, append("k", "b"), ttl + 20))).toEqual({ ok: true })
    expect(machine.apply(command(1, 1, 1, append("k", "a"), ttl + 20))).toEqual({ ok: true })
    expect(machine.get("k")).toBe("ab")
  })

  test("a client that never received a result cannot restart its session under the same id", () => {
    const machine = new KvStateMachine(limits)
    machine.apply(command(1, 1, 1, append("k", "a"), 0))
    tick(machine, ttl + 10, 1)
    // The retry still says ackedBelow 1, like a brand-new client: it is answered, not applied.
    expect(machine.apply(command(1, 1, 1, append("k", "a"), ttl + 20))).toEqual({ ok: true })
    expect(machine.get("k")).toBe("a")
  })

  test("a write answered SessionExpired never applies, whatever copy of it arrives later", () => {
    const machine = new KvStateMachine(limits)
    machine.apply(command(1, 1, 1, append("k", "a"), 0))
    tick(machine, ttl + 10, 1)
    const expired = machine.apply(command(1, 2, 2, append("k", "b"), ttl + 20))
    expect(expired).toMatchObject({ ok: false, error: "SessionExpired" })
    // Copies of seq 2 sent earlier, with an older ackedBelow, arrive afterwards.
    expect(machine.apply(command(1, 2, 1, append("k", "b"), ttl + 30))).toMatchObject({ error: "SessionExpired" })
    expect(machine.apply(command(1, 2, 2, append("k", "b"), 5 * ttl))).toMatchObject({ error: "SessionExpired" })
    expect(machine.get("k")).toBe("a")
  })

  test("a client the table does not know that claims results gets OutcomeUnknown, and nothing applies later", () => {
    const machine = new KvStateMachine(limits)
    tick(machine, 0, 1)
    expect(machine.apply(command(5, 4, 4, append("k", "x"), 10))).toMatchObject({ ok: false, error: "OutcomeUnknown" })
    expect(machine.apply(command(5, 4, 1, append("k", "x"), 20))).toMatchObject({ error: "OutcomeUnknown" })
    expect(machine.get("k")).toBe("")
  })

  test("expired sessions are bounded: beyond maxExpiredSessions the oldest is forgotten", () => {
    const machine = new KvStateMachine({ ...limits, maxExpiredSessions: 3 })
    for (let client = 1; client <= 5; client++) machine.apply(command(client, 1, 1, append("k", `${client}`), client))
    tick(machine, 10 * ttl, 1)
    expect(machine.sessions.count()).toBe(1)
    expect(machine.sessions.expiredCount()).toBe(3)
    expect(machine.sessions.storedResultCount()).toBe(4)
    // Clients 1 and 2 are forgotten: the table cannot tell whether their seq 2 was applied.
    expect(machine.apply(command(1, 2, 2, append("k", "!"), 10 * ttl))).toMatchObject({ error: "OutcomeUnknown" })
    // Clients 3..5 are remembered: exact answers.
    expect(machine.apply(command(5, 2, 2, append("k", "!"), 10 * ttl))).toMatchObject({ error: "SessionExpired" })
    expect(machine.apply(command(4, 1, 1, append("k", "4"), 10 * ttl))).toEqual({ ok: true })
    expect(machine.get("k")).toBe("12345")
    expect(machine.sessions.expiredCount()).toBe(3)
  })

  test("expired sessions travel in snapshots", () => {
    const machine = new KvStateMachine(limits)
    machine.apply(command(1, 1, 1, append("k", "a"), 0))
    tick(machine, ttl + 10, 1)
    const restored = KvStateMachine.restore(machine.snapshot(), limits)
    expect(restored.sessions.expiredCount()).toBe(1)
    expect(restored.apply(command(1, 1, 1, append("k", "a"), ttl + 20))).toEqual({ ok: true })
    expect(restored.apply(command(1, 2, 2, append("k", "b"), ttl + 20))).toMatchObject({ error: "SessionExpired" })
    expect(restored.get("k")).toBe("a")
    machine.apply(command(1, 1, 1, append("k", "a"), ttl + 20))
    machine.apply(command(1, 2, 2, append("k", "b"), ttl + 20))
    expect(restored.snapshot()).toEqual(machine.snapshot())
  })

  test("expired sessions travel in export and merge (shard migration)", () => {
    const from = new ClientSessions(limits)
    from.check(1, 1, 1, 0)
    from.record(1, 1, okResult, 0)
    from.expire(ttl + 10)
    const exported = from.export([1])
    expect(exported.expired?.map((s) => s.clientId)).toEqual([1])
    const to = new ClientSessions(limits)
    to.merge(exported)
    expect(to.check(1, 1, 1, 5)).toEqual({ kind: "duplicate", result: okResult })
    expect(to.check(1, 2, 2, 5)).toMatchObject({ result: { error: "SessionExpired" } })
  })
})
