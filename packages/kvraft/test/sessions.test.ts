import { describe, expect, test } from "bun:test"
import { ClientSessions, type KvCommand, type KvOp, KvStateMachine, okResult } from "../src/stateMachine/index.ts"

const append = (key: string, value: string): KvOp => ({ op: "append", key, value })

const command = (clientId: number, seq: number, ackedBelow: number, op: KvOp, nowMs = 1_000): KvCommand => ({
  clientId,
  seq,
  ackedBelow,
  nowMs,
  op,
})

describe("exactly-once application", () => {
  test("a command applied twice changes state once and returns the same result", () => {
    const machine = new KvStateMachine({ maxValueBytes: 3 })
    const first = command(5, 1, 1, append("k", "ab"))
    expect(machine.apply(first)).toEqual({ ok: true })
    expect(machine.apply(first)).toEqual({ ok: true })
    expect(machine.get("k")).toBe("ab")

    // An error result is also remembered: after a delete the retry must not apply.
    const tooBig = command(5, 2, 1, append("k", "cd"))
    const result = machine.apply(tooBig)
    expect(result).toMatchObject({ ok: false, error: "ValueTooLarge" })
    machine.apply(command(5, 3, 1, { op: "delete", key: "k" }))
    expect(machine.apply(tooBig)).toEqual(result)
    expect(machine.get("k")).toBe("")
  })

  test("out-of-order seqs from one client with several outstanding each apply once", () => {
    const machine = new KvStateMachine()
    expect(machine.apply(command(9, 3, 1, append("k", "3")))).toEqual({ ok: true })
    expect(machine.apply(command(9, 2, 1, append("k", "2")))).toEqual({ ok: true })
    expect(machine.apply(command(9, 3, 1, append("k", "3")))).toEqual({ ok: true })
    expect(machine.apply(command(9, 1, 1, append("k", "1")))).toEqual({ ok: true })
    expect(machine.apply(command(9, 2, 1, append("k", "2")))).toEqual({ ok: true })
    expect(machine.get("k")).toBe("321")
    expect(machine.sessions.storedResultCount()).toBe(3)
  })

  test("acknowledged results are forgotten and their seqs answered Stale", () => {
    const machine = new KvStateMachine()
    for (let seq = 1; seq <= 4; seq++) machine.apply(command(9, seq, 1, append("k", String(seq))))
    expect(machine.sessions.storedResultCount()).toBe(4)
    // The client has received 1..3 and sends seq 5.
    machine.apply(command(9, 5, 4, append("k", "5")))
    expect(machine.sessions.storedResultCount()).toBe(2)
    const stale = machine.apply(command(9, 2, 1, append("k", "2")))
    expect(stale).toMatchObject({ ok: false, error: "Stale" })
    // Still waiting for 4: its retry is answered from the table.
    expect(machine.apply(command(9, 4, 1, append("k", "4")))).toEqual({ ok: true })
    expect(machine.get("k")).toBe("12345")
  })

  test("a sequential clerk keeps exactly one stored result", () => {
    const machine = new KvStateMachine()
    for (let seq = 1; seq <= 100; seq++) machine.apply(command(9, seq, seq, append("k", "x")))
    expect(machine.sessions.storedResultCount()).toBe(1)
    expect(machine.get("k")).toBe("x".repeat(100))
  })

  test("a client too far ahead of its floor is told TooManyOutstanding and nothing applies", () => {
    const machine = new KvStateMachine({ maxOutstandingPerClient: 4 })
    expect(machine.apply(command(9, 5, 1, append("k", "5")))).toMatchObject({ error: "TooManyOutstanding" })
    expect(machine.sessions.count()).toBe(0)
    expect(machine.apply(command(9, 4, 1, append("k", "4")))).toEqual({ ok: true })
    expect(machine.apply(command(9, 5, 1, append("k", "5")))).toMatchObject({ error: "TooManyOutstanding" })
    expect(machine.apply(command(9, 5, 2, append("k", "5")))).toEqual({ ok: true })
    expect(machine.get("k")).toBe("45")
  })

  test("a rejected command is not remembered: its retry within the window applies", () => {
    const sessions = new ClientSessions({ maxOutstandingPerClient: 2 })
    expect(sessions.check(1, 1, 1, 0)).toEqual({ kind: "apply" })
    sessions.record(1, 1, okResult, 0)
    expect(sessions.check(1, 3, 1, 0).kind).toBe("reject")
    expect(sessions.check(1, 3, 2, 0)).toEqual({ kind: "apply" })
  })
})

describe("session expiry by log time", () => {
  const ttl = 60_000

  test("a session idle longer than the TTL of log time expires; its client gets SessionExpired", () => {
    // One leader whose stamps are never more than a step apart: log time is its clock.
    const machine = new KvStateMachine({ sessionTtlMs: ttl, maxLogTimeStepMs: ttl })
    machine.apply(command(1, 1, 1, append("k", "a"), 0))
    machine.apply(command(2, 1, 1, append("k", "b"), 10_000))
    // Exactly the TTL idle is still alive.
    machine.apply(command(2, 2, 2, append("k", "c"), ttl))
    expect(machine.sessions.count()).toBe(2)
    machine.apply(command(2, 3, 3, append("k", "d"), ttl + 1))
    expect(machine.sessions.count()).toBe(1)
    const expired = machine.apply(command(1, 2, 2, append("k", "e"), ttl + 2))
    expect(expired).toMatchObject({ ok: false, error: "SessionExpired" })
    expect(machine.get("k")).toBe("abcd")
  })

  test("a new client (ackedBelow 1) is accepted; an expired client's id is refused, not restarted", () => {
    const machine = new KvStateMachine({ sessionTtlMs: ttl, maxLogTimeStepMs: ttl })
    machine.apply(command(1, 1, 1, append("k", "a"), 0))
    machine.apply(command(3, 1, 1, append("k", "b"), ttl))
    machine.apply(command(3, 2, 2, append("k", "c"), 2 * ttl))
    expect(machine.apply(command(4, 1, 1, append("k", "d"), 2 * ttl))).toEqual({ ok: true })
    // Client 1's retry of seq 1 is answered from its expired session; a new seq under its id is refused.
    expect(machine.apply(command(1, 1, 1, append("k", "a"), 2 * ttl))).toEqual({ ok: true })
    expect(machine.apply(command(1, 2, 1, append("k", "e"), 2 * ttl))).toMatchObject({ error: "SessionExpired" })
    expect(machine.get("k")).toBe("abcd")
  })

  test("a leader whose clock is behind does not turn log time back, and adds nothing", () => {
    const sessions = new ClientSessions({ sessionTtlMs: ttl })
    sessions.check(1, 1, 1, 100_000)
    sessions.record(1, 1, okResult, 100_000)
    sessions.check(2, 1, 1, 5_000) // new leader, clock behind
    expect(sessions.logTimeMs).toBe(100_000)
    // From there log time follows the new leader's clock.
    sessions.expire(5_000 + ttl)
    expect(sessions.logTimeMs).toBe(100_000 + sessions.limits.maxLogTimeStepMs)
  })

  test("any command, even a rejected duplicate, keeps a session alive", () => {
    const sessions = new ClientSessions({ sessionTtlMs: ttl })
    sessions.check(1, 1, 1, 0)
    sessions.record(1, 1, okResult, 0)
    expect(sessions.check(1, 1, 2, ttl).kind).toBe("reject") // stale retry
    sessions.expire(ttl + ttl)
    expect(sessions.count()).toBe(1)
  })

  test("two replicas fed the same commands expire identically", () => {
    const commands: KvCommand[] = []
    let nowMs = 0
    for (let i = 0; i < 400; i++) {
      // Five clients; time jumps past the TTL now and then; clock skew between leaders.
      nowMs += i % 97 === 0 ? ttl + 1 : (i * 7919) % 4_000
      const skew = i % 13 === 0 ? -30_000 : 0
      const clientId = 1 + (i % 5)
      const seq = 1 + Math.floor(i / 5)
      commands.push(command(clientId, seq, seq, append(`k${clientId}`, `${seq},`), Math.max(0, nowMs + skew)))
    }
    const a = new KvStateMachine({ sessionTtlMs: ttl })
    const b = new KvStateMachine({ sessionTtlMs: ttl })
    const resultsA = commands.map((cmd) => a.apply(cmd))
    const resultsB = commands.map((cmd) => b.apply(cmd))
    expect(resultsB).toEqual(resultsA)
    expect(resultsA.some((result) => !result.ok && result.error === "SessionExpired")).toBe(true)
    expect(b.snapshot()).toEqual(a.snapshot())
    // And a replica restored half-way agrees too.
    const c0 = new KvStateMachine({ sessionTtlMs: ttl })
    const resultsC = commands.slice(0, 200).map((cmd) => c0.apply(cmd))
    const c = KvStateMachine.restore(c0.snapshot(), { sessionTtlMs: ttl })
    resultsC.push(...commands.slice(200).map((cmd) => c.apply(cmd)))
    expect(resultsC).toEqual(resultsA)
    expect(c.snapshot()).toEqual(a.snapshot())
  })
})

describe("merging sessions (shard migration)", () => {
  test("retries arriving at the new owner keep exactly-once", () => {
    // The shard lived at group B, moved to group A and now moves back to B. B still holds
    // its older copy of the shard's sessions: client 4 with seq 1 applied.
    const groupB = new KvStateMachine()
    groupB.apply(command(4, 1, 1, append("k", "1")))
    const groupA = new KvStateMachine()
    groupA.apply(command(99, 1, 1, { op: "put", key: "k", value: groupB.get("k") }))
    groupA.sessions.merge(groupB.sessions.export())
    // At A, client 4 gets seq 2 and 3 applied; by seq 3 it has received the result of seq 1.
    groupA.apply(command(4, 2, 1, append("k", "2")))
    groupA.apply(command(4, 3, 2, append("k", "3")))
    // Client 6 got a ValueTooLarge at A that it has not received yet.
    const small = new KvStateMachine({ maxValueBytes: 1 })
    small.apply(command(6, 1, 1, append("big", "xx")))
    groupA.sessions.merge(small.sessions.export([6]))

    // Migration back to B: the data and the sessions go through B's log.
    groupB.apply(command(99, 1, 1, { op: "put", key: "k", value: groupA.get("k") }))
    groupB.sessions.merge(groupA.sessions.export([4, 6]))
    expect(groupB.sessions.export([4]).sessions[0]?.floor).toBe(2)

    expect(groupB.apply(command(4, 1, 1, append("k", "1")))).toMatchObject({ error: "Stale" })
    expect(groupB.apply(command(4, 2, 2, append("k", "2")))).toEqual({ ok: true })
    expect(groupB.apply(command(4, 3, 2, append("k", "3")))).toEqual({ ok: true })
    expect(groupB.get("k")).toBe("123")
    expect(groupB.apply(command(6, 1, 1, append("big", "xx")))).toMatchObject({ error: "ValueTooLarge" })
    expect(groupB.get("big")).toBe("")
    // Client 4 goes on: seq 4 is new and applies.
    expect(groupB.apply(command(4, 4, 4, append("k", "4")))).toEqual({ ok: true })
    expect(groupB.get("k")).toBe("1234")
  })

  test("merge takes the higher floor and drops results below it", () => {
    const a = new ClientSessions()
    for (const seq of [3, 4, 5]) {
      a.check(1, seq, 3, 10)
      a.record(1, seq, okResult, 10)
    }
    const b = new ClientSessions()
    for (const seq of [5, 6]) {
      b.check(1, seq, seq === 5 ? 1 : 5, 20)
      b.record(1, seq, okResult, 20)
    }
    a.merge(b.export())
    const [session] = a.export().sessions
    expect(session?.floor).toBe(5)
    // b's session was idle 0 ms of b's log time: so it is here (log time is per table).
    expect(session?.lastSeenMs).toBe(10)
    expect(session?.results.map(([seq]) => seq).sort()).toEqual([5, 6])
    expect(a.logTimeMs).toBe(10)
  })

  test("merging the same sessions twice changes nothing the second time", () => {
    const a = new ClientSessions()
    a.check(1, 1, 1, 10)
    a.record(1, 1, okResult, 10)
    const b = new ClientSessions()
    b.check(2, 1, 1, 5)
    b.record(2, 1, okResult, 5)
    b.expire(8) // client 2 has been idle 3 ms of b's log time
    a.merge(b.export())
    const once = a.toSnapshot()
    a.merge(b.export())
    expect(a.toSnapshot()).toEqual(once)
    // Sessions stay in order of activity, so the older one expires first.
    expect(once[1].map(([clientId]) => clientId)).toEqual([2, 1])
    expect(once[1].map(([, , lastSeenMs]) => lastSeenMs)).toEqual([7, 10])
  })

  test("export can select clients and merge refuses malformed data", () => {
    const a = new ClientSessions()
    for (const clientId of [1, 2, 3]) a.check(clientId, 1, 1, 0)
    expect(a.export([2, 3, 42]).sessions.map((s) => s.clientId)).toEqual([2, 3])
    const b = new ClientSessions()
    expect(() => b.merge({ logTimeMs: 0, sessions: [{ clientId: 0, floor: 1, lastSeenMs: 0, results: [] }] })).toThrow(
      /malformed/,
    )
    const badResult = { ok: false, error: "", message: 7 } as never
    expect(() =>
      b.merge({ logTimeMs: 0, sessions: [{ clientId: 1, floor: 1, lastSeenMs: 0, results: [[1, badResult]] }] }),
    ).toThrow(/malformed/)
    expect(b.count()).toBe(0)
  })
})
