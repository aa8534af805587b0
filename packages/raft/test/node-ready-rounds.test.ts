/**
 * The loop of Ready rounds that co-hosted replicas share (readyRounds.ts), driven with scripted
 * members: nodes woken while a round's write is in flight take their Readies together in the next
 * round, their messages leave on one flush of a shared transport, and one member's failure stops
 * only that member.
 */
import { expect, test } from "bun:test"
import { Deferred, Effect, Exit, Scope } from "effect"
import { makeReadyRounds, type ReadyRoundsShape, type RoundMember } from "../src/node/readyRounds.ts"

interface Scripted {
  readonly member: RoundMember
  /** Readies waiting to be taken. */
  readies: number
  failOnTake: boolean
  /** Its Readies hold nothing to write. */
  writesNothing: boolean
  /** Its writes are durable on return (flushed on the caller's thread): `write` gives Effect.void. */
  writesDurable: boolean
  /** Its Readies carry heartbeats. */
  heartbeats: boolean
  /** A leader far enough into its heartbeat interval to send one with another member's. */
  alignable: boolean
  /** Runs as its Ready is taken (what an input arriving then would do). */
  onTake: (() => void) | undefined
  stopped: boolean
}

/** A member whose writes wait for the test; every step is logged as `name:step`. */
const scripted = (
  name: string,
  log: string[],
  transport: RoundMember["transport"],
  writes: Deferred.Deferred<void>[],
): Scripted => {
  const s: Scripted = {
    readies: 0,
    failOnTake: false,
    writesNothing: false,
    writesDurable: false,
    heartbeats: false,
    alignable: false,
    onTake: undefined,
    stopped: false,
    member: {
      transport,
      stopped: () => s.stopped,
      prepare: () => log.push(`${name}:prepare`),
      hasReady: () => s.readies > 0,
      take: () => {
        if (s.failOnTake) throw new Error(`${name} failed`)
        s.readies--
        log.push(`${name}:take`)
        s.onTake?.()
        return s.heartbeats ? "heartbeats" : "messages"
      },
      alignHeartbeat: () => {
        log.push(`${name}:asked`)
        if (!s.alignable) return false
        log.push(`${name}:align`)
        s.readies++
        s.heartbeats = true
        return true
      },
      write: () => {
        log.push(`${name}:write`)
        if (s.writesNothing) return undefined
        if (s.writesDurable) return Effect.void
        const written = Deferred.makeUnsafe<void>()
        writes.push(written)
        return Deferred.await(written)
      },
      finish: (written) =>
        log.push(
          `${name}:finish:${written === undefined ? "nothing written" : Exit.isSuccess(written) ? "durable" : "failed"}`,
        ),
      settle: () => undefined,
      rest: () => {
        log.push(`${name}:rest`)
        return undefined
      },
      fail: (error) => {
        s.stopped = true
        log.push(`${name}:fail:${error instanceof Error ? error.message : String(error)}`)
      },
    },
  }
  return s
}

/** A transport shared by members, whose flushes are logged and counted. */
const loggedSocket = (log: string[]) => {
  const socket = {
    flushes: 0,
    flush: () => {
      socket.flushes++
      log.push("socket:flush")
    },
  }
  return socket
}

/** Members a, b and c on one logged socket, and the writes they start. */
const threeOnOneSocket = () => {
  const log: string[] = []
  const writes: Deferred.Deferred<void>[] = []
  const socket = loggedSocket(log)
  const [a, b, c] = ["a", "b", "c"].map((name) => scripted(name, log, socket, writes)) as [Scripted, Scripted, Scripted]
  return { log, writes, socket, a, b, c }
}

/** Lets the loop's fiber run until it waits again. */
const settle = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 5)))

/** Waits (up to 2 s: a loaded machine delays the loop's turns) for `log` to hold `n` steps, then settles. */
const logged = (log: readonly string[], n: number) =>
  Effect.promise(async () => {
    for (let waited = 0; log.length < n && waited < 2_000; waited++) await Bun.sleep(1)
  }).pipe(Effect.andThen(settle))

/** Joins `members` to `rounds` for the life of `scope`; says that one of them has work. */
const joinAll = (rounds: ReadyRoundsShape, scope: Scope.Scope, ...members: Scripted[]) =>
  Effect.gen(function* () {
    const wakes = new Map<Scripted, () => void>()
    for (const m of members) wakes.set(m, (yield* rounds.join(m.member).pipe(Scope.provide(scope))).wake)
    return (m: Scripted) => wakes.get(m)?.()
  })

const withRounds = <A>(body: (rounds: ReadyRoundsShape, scope: Scope.Scope) => Effect.Effect<A>) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const scope = yield* Effect.scope
        const rounds = yield* makeReadyRounds
        return yield* body(rounds, scope)
      }),
    ),
  )

test("members woken while a round's write is in flight share the next round and one transport flush", async () => {
  const { log, writes, socket, a, b, c } = threeOnOneSocket()
  await withRounds((rounds, scope) =>
    Effect.gen(function* () {
      const wake = yield* joinAll(rounds, scope, a, b, c)
      a.readies = 1
      wake(a)
      yield* logged(log, 4)
      // a's round is writing; b and c get work at different moments meanwhile.
      expect(log).toEqual(["a:prepare", "a:take", "socket:flush", "a:write"])
      b.readies = 1
      wake(b)
      yield* settle
      c.readies = 1
      wake(c)
      yield* settle
      expect(writes.length).toBe(1)
      log.length = 0
      socket.flushes = 0
      yield* Deferred.succeed(writes[0]!, undefined)
      yield* logged(log, 8)
      // One round for both: taken together, one flush of their shared socket, both written.
      expect(log).toEqual([
        "a:finish:durable",
        "b:prepare",
        "c:prepare",
        "b:take",
        "c:take",
        "socket:flush",
        "b:write",
        "c:write",
      ])
      expect(socket.flushes).toBe(1)
      log.length = 0
      yield* Deferred.succeed(writes[1]!, undefined)
      yield* settle
      expect(log).toEqual([])
      yield* Deferred.succeed(writes[2]!, undefined)
      yield* logged(log, 5)
      // The round ends once every member's write is durable.
      expect(log).toEqual(["b:finish:durable", "c:finish:durable", "a:rest", "b:rest", "c:rest"])
    }),
  )
})

test("a write durable on return finishes its member at once, before another member's write is durable", async () => {
  const { log, writes, a, b } = threeOnOneSocket()
  a.writesDurable = true
  await withRounds((rounds, scope) =>
    Effect.gen(function* () {
      const wake = yield* joinAll(rounds, scope, a, b)
      a.readies = 1
      b.readies = 1
      wake(a)
      wake(b)
      yield* logged(log, 8)
      // a's acks need not wait for b's flush: a is finished (its messages sent) while b's runs.
      expect(log).toEqual([
        "a:prepare",
        "b:prepare",
        "a:take",
        "b:take",
        "socket:flush",
        "a:write",
        "a:finish:durable",
        "b:write",
      ])
      expect(writes.length).toBe(1)
      log.length = 0
      yield* Deferred.succeed(writes[0]!, undefined)
      yield* logged(log, 3)
      expect(log).toEqual(["b:finish:durable", "a:rest", "b:rest"])
    }),
  )
})

test("a member's heartbeats bring those of leaders past half their interval into the same flush", async () => {
  const { log, socket, a, b, c } = threeOnOneSocket()
  a.writesNothing = true
  b.writesNothing = true
  b.alignable = true
  await withRounds((rounds, scope) =>
    Effect.gen(function* () {
      const wake = yield* joinAll(rounds, scope, a, b, c)
      // A Ready without heartbeats asks nobody.
      a.readies = 1
      wake(a)
      yield* logged(log, 6)
      expect(log).toEqual(["a:prepare", "a:take", "socket:flush", "a:write", "a:finish:nothing written", "a:rest"])
      log.length = 0
      socket.flushes = 0
      // With heartbeats: b, not woken, sends its own in the same flush; c (not far enough) does not.
      a.readies = 1
      a.heartbeats = true
      wake(a)
      yield* logged(log, 13)
      expect(log).toEqual([
        "a:prepare",
        "a:take",
        "b:asked",
        "b:align",
        "b:take",
        "c:asked",
        "socket:flush",
        "a:write",
        "a:finish:nothing written",
        "b:write",
        "b:finish:nothing written",
        "a:rest",
        "b:rest",
      ])
      expect(socket.flushes).toBe(1)
    }),
  )
})

test("a member woken while heartbeats are taken is prepared and joins their flush", async () => {
  const { log, writes, socket, a, b, c } = threeOnOneSocket()
  for (const m of [a, b, c]) m.writesNothing = true
  await withRounds((rounds, scope) =>
    Effect.gen(function* () {
      const wake = yield* joinAll(rounds, scope, a, b, c)
      a.readies = 1
      a.heartbeats = true
      a.onTake = () => {
        b.readies = 1
        wake(b)
      }
      wake(a)
      yield* logged(log, 12)
      // b had not been admitted: prepared first (its waiting reads join), then taken with a's heartbeats.
      expect(log).toEqual([
        "a:prepare",
        "a:take",
        "b:prepare",
        "b:take",
        "c:asked",
        "socket:flush",
        "a:write",
        "a:finish:nothing written",
        "b:write",
        "b:finish:nothing written",
        "a:rest",
        "b:rest",
      ])
      expect(socket.flushes).toBe(1)
      expect(writes).toEqual([])
    }),
  )
})

test("a member whose Ready writes nothing finishes without waiting for the others' writes", async () => {
  const log: string[] = []
  const writes: Deferred.Deferred<void>[] = []
  const socket = { flush: () => {} }
  const a = scripted("a", log, socket, writes)
  const b = scripted("b", log, socket, writes)
  b.writesNothing = true
  await withRounds((rounds, scope) =>
    Effect.gen(function* () {
      const wake = yield* joinAll(rounds, scope, a, b)
      a.readies = 1
      b.readies = 1
      wake(a)
      wake(b)
      yield* logged(log, 7)
      expect(log).toEqual([
        "a:prepare",
        "b:prepare",
        "a:take",
        "b:take",
        "a:write",
        "b:write",
        "b:finish:nothing written",
      ])
      yield* Deferred.succeed(writes[0]!, undefined)
      yield* logged(log, 10)
      expect(log.slice(7)).toEqual(["a:finish:durable", "a:rest", "b:rest"])
    }),
  )
})

test("a member whose step throws stops; the others' round goes on", async () => {
  const log: string[] = []
  const writes: Deferred.Deferred<void>[] = []
  const socket = { flush: () => {} }
  const a = scripted("a", log, socket, writes)
  const b = scripted("b", log, socket, writes)
  await withRounds((rounds, scope) =>
    Effect.gen(function* () {
      const wake = yield* joinAll(rounds, scope, a, b)
      a.readies = 1
      a.failOnTake = true
      b.readies = 1
      wake(a)
      wake(b)
      yield* logged(log, 5)
      expect(log).toEqual(["a:prepare", "b:prepare", "a:fail:a failed", "b:take", "b:write"])
      yield* Deferred.succeed(writes[0]!, undefined)
      yield* logged(log, 7)
      expect(log.slice(5)).toEqual(["b:finish:durable", "b:rest"])
      // Stopped, it takes part in no round again.
      a.readies = 1
      b.readies = 1
      wake(a)
      wake(b)
      yield* logged(log, 10)
      expect(log.slice(7)).toEqual(["b:prepare", "b:take", "b:write"])
    }),
  )
})

test("a member that left the rounds is not woken into one", async () => {
  const log: string[] = []
  const writes: Deferred.Deferred<void>[] = []
  const socket = { flush: () => {} }
  const a = scripted("a", log, socket, writes)
  await withRounds((rounds) =>
    Effect.gen(function* () {
      const memberScope = yield* Scope.make()
      const wake = yield* joinAll(rounds, memberScope, a)
      yield* Scope.close(memberScope, Exit.void)
      a.readies = 1
      wake(a)
      yield* settle
      expect(log).toEqual([])
    }),
  )
})
