/**
 * Proves, over random runs, that leaders whose clocks are hours apart, duplicated and reordered
 * commands, idle clients and bounded memory never break the session contract: no write applies
 * twice, a write answered `SessionExpired` was never applied and never is later, and a client
 * active within half the TTL (with few leader changes since) never loses its session.
 * Replay a run with KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { seedFromEnv } from "@kv/rpc"
import { type KvCommand, KvStateMachine } from "../src/stateMachine/index.ts"

const splitmix = (seed: number) => {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x9e3779b9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad)
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97)
    return ((z ^ (z >>> 15)) >>> 0) / 4294967296
  }
  return { next, int: (n: number) => Math.floor(next() * n), chance: (p: number) => next() < p }
}

const HOUR = 3_600_000
const limits = { sessionTtlMs: 60_000, maxLogTimeStepMs: 2_000, maxOutstandingPerClient: 4, maxExpiredSessions: 40 }
/** How long a clerk retries one write, and how long a datagram may linger: well below the TTL. */
const retryWindowMs = 15_000

/** One server-side session of a clerk, as the clerk keeps it. */
interface Session {
  readonly clientId: number
  nextSeq: number
  ackedBelow: number
  /**
   * Whether any answer came back under this session. Until one does, the clerk claims nothing
   * (ackedBelow 1): the servers may never have seen it, and a claim would make them answer
   * OutcomeUnknown to a write never sent before.
   */
  confirmed: boolean
  /** Seqs whose answer the clerk holds. */
  readonly received: Set<number>
  /** seq -> the token its append carries */
  readonly ops: Map<number, string>
  /** seq -> real time of its first send: like a clerk's deadline, retries stop a while after. */
  readonly firstSentMs: Map<number, number>
}

/** A clerk: new writes go to its current session; older sessions still retry their own writes. */
interface Clerk {
  current: Session
  readonly sessions: Session[]
}

test("sessions keep their contract under skewed leader clocks, reordering, duplication and expiry", () => {
  const seed = seedFromEnv()
  try {
    run(seed)
  } catch (error) {
    console.error(`replay: KV_SEED=${seed} bun test packages/kvraft/test/sessions.skew.random.test.ts`)
    throw error
  }
})

const run = (seed: number) => {
  const rng = splitmix(seed)
  let realMs = 0
  let leaderOffset = 0
  let leaderChanges = 0
  const machine = new KvStateMachine(limits)
  let restored = new KvStateMachine(limits)
  let nextId = 1
  const owner = new Map<number, Clerk>()
  /** Per client id: real time and leader-change count when a command of it was last applied. */
  const lastTouched = new Map<number, { atMs: number; changes: number }>()
  const newSession = (clerk?: Clerk): Session => {
    const session: Session = {
      clientId: nextId++,
      nextSeq: 1,
      ackedBelow: 1,
      confirmed: false,
      received: new Set(),
      ops: new Map(),
      firstSentMs: new Map(),
    }
    if (clerk !== undefined) {
      clerk.current = session
      clerk.sessions.push(session)
      owner.set(session.clientId, clerk)
    }
    return session
  }
  const clerks: Clerk[] = []
  for (let i = 0; i < 8; i++) {
    const first = newSession()
    const clerk = { current: first, sessions: [first] }
    owner.set(first.clientId, clerk)
    clerks.push(clerk)
  }
  let inFlight: (KvCommand & { readonly sentMs: number })[] = []
  let tokens = 0
  const applied = new Set<string>()
  const refused = new Set<string>()
  /** Client ids whose session the table no longer has. */
  const lost = new Set<number>()
  let expiredAnswers = 0
  let unknownAnswers = 0

  const send = (session: Session, seq: number) => {
    const value = session.ops.get(seq)!
    // nowMs is stamped on delivery: the leader of that moment proposes it.
    const op = { op: "append", key: "k", value } as const
    const ackedBelow = session.confirmed ? session.ackedBelow : 1
    inFlight.push({ clientId: session.clientId, seq, ackedBelow, nowMs: 0, op, sentMs: realMs })
  }
  const write = (session: Session, token: string): boolean => {
    const floor = session.confirmed ? session.ackedBelow : 1
    if (session.nextSeq >= floor + limits.maxOutstandingPerClient) return false
    const seq = session.nextSeq++
    session.ops.set(seq, token)
    session.firstSentMs.set(seq, realMs)
    send(session, seq)
    return true
  }

  for (let stepNo = 0; stepNo < 20_000; stepNo++) {
    realMs += rng.int(200)
    if (rng.chance(0.002)) {
      // A new leader, its clock up to three hours off either way.
      leaderOffset = (rng.next() * 6 - 3) * HOUR
      leaderChanges++
    }
    if (rng.chance(0.005)) {
      // A one-shot client (a CLI call): one write, then gone. Its session expires in turn.
      const once = newSession()
      owner.set(once.clientId, { current: once, sessions: [once] })
      write(once, `<${tokens++}>`)
    }
    const index = rng.int(clerks.length)
    const clerk = clerks[index]!
    // Three clerks are mostly idle: theirs are the sessions that expire.
    if (index < 3 && rng.chance(0.99)) continue
    // Past its retry window a write is given up (a Timeout, outcome unknown to the clerk).
    for (const session of clerk.sessions) {
      for (const [seq, sentMs] of session.firstSentMs) {
        if (realMs - sentMs >= retryWindowMs) {
          session.received.add(seq)
          session.firstSentMs.delete(seq)
        }
      }
      while (session.received.has(session.ackedBelow)) session.ackedBelow++
    }
    const action = rng.next()
    if (action < 0.3) {
      write(clerk.current, `<${tokens++}>`)
    } else if (action < 0.45) {
      const waiting = clerk.sessions.flatMap((session) =>
        [...session.ops.keys()]
          .filter((seq) => !session.received.has(seq) && realMs - session.firstSentMs.get(seq)! < retryWindowMs)
          .map((seq) => [session, seq] as const),
      )
      if (waiting.length > 0) {
        const [session, seq] = waiting[rng.int(waiting.length)]!
        send(session, seq)
      }
    } else if (inFlight.length > 0) {
      const at = rng.int(inFlight.length)
      const { sentMs: _, ...sent } = inFlight[at]!
      const cmd: KvCommand = { ...sent, nowMs: Math.max(0, realMs + 4 * HOUR + leaderOffset) }
      if (!rng.chance(0.2)) {
        inFlight[at] = inFlight[inFlight.length - 1]!
        inFlight.pop()
      }
      const before = machine.get("k").length
      const result = machine.apply(cmd)
      expect(restored.apply(cmd)).toEqual(result)
      const id = `${cmd.clientId}.${cmd.seq}`
      const context = () => `step ${stepNo}: ${JSON.stringify(cmd)} -> ${JSON.stringify(result)}`
      if (machine.get("k").length > before) {
        if (applied.has(id)) throw new Error(`applied twice at ${context()}`)
        if (refused.has(id)) throw new Error(`applied after SessionExpired at ${context()}`)
        applied.add(id)
      }
      const touched = lastTouched.get(cmd.clientId)
      if (machine.sessions.export([cmd.clientId]).sessions.length === 1) {
        lastTouched.set(cmd.clientId, { atMs: realMs, changes: leaderChanges })
      }
      const sessionOwner = owner.get(cmd.clientId)!
      const session = sessionOwner.sessions.find((s) => s.clientId === cmd.clientId)!
      if (!result.ok && (result.error === "SessionExpired" || result.error === "OutcomeUnknown")) {
        // Log time since the session was last touched is at most the real time elapsed plus one
        // step per leader change: below the TTL, the session must still be there.
        if (!lost.has(cmd.clientId)) {
          expect(touched).toBeDefined()
          const bound = realMs - touched!.atMs + (leaderChanges - touched!.changes) * limits.maxLogTimeStepMs
          if (bound <= limits.sessionTtlMs) throw new Error(`active session lost (bound ${bound}) at ${context()}`)
          lost.add(cmd.clientId)
        }
        // A duplicate of an answer already taken: the clerk has moved on.
        if (session.received.has(cmd.seq)) continue
        session.received.add(cmd.seq)
        if (session === sessionOwner.current) newSession(sessionOwner)
        if (result.error === "SessionExpired") {
          expiredAnswers++
          if (applied.has(id)) throw new Error(`SessionExpired for an applied write at ${context()}`)
          refused.add(id)
          // Not applied, never will be: the clerk resends the write under its fresh session.
          write(sessionOwner.current, session.ops.get(cmd.seq)!)
        } else {
          unknownAnswers++
        }
        continue
      }
      if (!(!result.ok && result.error === "Stale") && rng.chance(0.8)) {
        session.received.add(cmd.seq)
        session.confirmed = true
        while (session.received.has(session.ackedBelow)) session.ackedBelow++
      }
    }
    if (rng.chance(0.002)) restored = KvStateMachine.restore(restored.snapshot(), limits)
    // Old datagrams are eventually gone, as on a real network.
    if (inFlight.length > 200) inFlight = inFlight.slice(-100)
    inFlight = inFlight.filter((cmd) => realMs - cmd.sentMs < retryWindowMs)
    const { sessions } = machine
    expect(sessions.storedResultCount()).toBeLessThanOrEqual(
      (sessions.count() + limits.maxExpiredSessions) * limits.maxOutstandingPerClient,
    )
    expect(sessions.expiredCount()).toBeLessThanOrEqual(limits.maxExpiredSessions)
  }
  // No token was applied twice, even one resent under a fresh session.
  const seen = machine.get("k").match(/<[^>]*>/g) ?? []
  expect(new Set(seen).size).toBe(seen.length)
  expect(restored.snapshot()).toEqual(machine.snapshot())
  console.log(
    `sessions skew random (seed ${seed}): ${applied.size} applied, ${expiredAnswers} SessionExpired, ` +
      `${unknownAnswers} OutcomeUnknown, ${leaderChanges} leader changes, ${nextId - 1} sessions`,
  )
  expect(expiredAnswers).toBeGreaterThan(0)
}
