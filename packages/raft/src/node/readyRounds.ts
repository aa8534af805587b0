/**
 * Ready rounds: the loop that takes Raft nodes' Readies, writes them and sends what they hold.
 *
 * Every node has one of its own by default. Replicas of several groups in one process can share one
 * (`makeReadyRounds`, provided as `ReadyRounds`), as a multi-Raft store's single loop does: a round takes the Ready of every
 * node that has one, sends all their early messages before one transport flush (on a shared socket,
 * the groups' messages to one peer process leave in one datagram), writes all of them in one
 * synchronous stretch (on the shared write-ahead log, one flush covers them) and, once that is
 * durable, sends what waited for it. A node woken while a round's write is in flight joins the next
 * round instead of starting a round of its own: the groups' batches grow together rather than each
 * group's loop cutting its own small batches at its own moments.
 */
import { Context, Effect, Exit, Scheduler, type Scope } from "effect"
import { durableOnReturn } from "../storage/types.ts"

/** One node's part in a round (raftNode.ts implements it over its core). */
export interface RoundMember {
  /** Where the node's messages leave: flushed once per round for every member on it. */
  readonly transport: { readonly flush: () => void }
  readonly stopped: () => boolean
  /** Before the node joins a round: ticks owed, leadership, read rounds waiting. */
  readonly prepare: () => void
  readonly hasReady: () => boolean
  /** Takes the node's Ready and hands its early messages to the transport: none, some, or heartbeats among them. */
  readonly take: () => Taken
  /**
   * Another member sends heartbeats in this round: a leader far enough into its heartbeat interval
   * sends its own too (RaftCore.alignHeartbeat); whether it did, and so has a Ready to take.
   */
  readonly alignHeartbeat: () => boolean
  /**
   * Starts the taken Ready's durable write and applies what it commits; the wait for the write,
   * `Effect.void` when it is durable on return (`durableOnReturn`: flushed on the caller's thread).
   */
  readonly write: () => Effect.Effect<void> | undefined
  /** Once the write is durable (or failed): what waited for it leaves, and the core advances. */
  readonly finish: (written: Exit.Exit<void> | undefined) => void
  /** After each Ready: membership changes the node should learn or report; undefined when there are none. */
  readonly settle: () => Effect.Effect<void> | undefined
  /** When the rounds end: compaction and leadership left over; undefined when nothing is left to report. */
  readonly rest: () => Effect.Effect<void> | undefined
  /** An error thrown by the node's own steps (an apply that threw, a core defect): it stops. */
  readonly fail: (error: unknown) => void
}

export type Taken = "nothing" | "messages" | "heartbeats"

export interface ReadyRoundsShape {
  /** Adds a node to the rounds until the scope closes; `wake` says it has work. */
  readonly join: (member: RoundMember) => Effect.Effect<{ readonly wake: () => void }, never, Scope.Scope>
}

/** Runs one member's step; an error stops that member, not the others. */
const guarded = <A>(member: RoundMember, step: () => A, otherwise: A): A => {
  try {
    return step()
  } catch (error) {
    member.fail(error)
    return otherwise
  }
}

/** `step(member)` for a step that needs the member itself: no closure made per call. */
const guardedWith = (member: RoundMember, step: (member: RoundMember) => void): void => {
  try {
    step(member)
  } catch (error) {
    member.fail(error)
  }
}

/**
 * Starts a loop of rounds in the current scope. The loop is callbacks on the scope's scheduler, not
 * a fiber: a round comes every few datagrams, and a fiber's latch wake-up and yields made most of
 * a round's garbage (about 40 heap cells each, counted with bun:jsc's heap statistics). Effects
 * run only for what needs them: a write that is still flushing, and what a node has to log.
 */
export const makeReadyRounds: Effect.Effect<ReadyRoundsShape, never, Scope.Scope> = Effect.gen(function* () {
  const dispatcher = (yield* Scheduler.Scheduler).makeDispatcher()
  const runCallback = Effect.runCallbackWith(yield* Effect.context<never>())
  const woken = new Set<RoundMember>()
  const members = new Set<RoundMember>()

  /**
   * Members woken since they were last admitted join the round, each prepared once; those of
   * `taking` (their Ready taken and not yet finished) wait for the next admission.
   */
  const admit = (participants: Set<RoundMember>, taking?: ReadonlySet<RoundMember>) => {
    if (woken.size === 0) return
    for (const m of woken) {
      if (taking?.has(m)) continue
      woken.delete(m)
      if (!members.has(m) || m.stopped()) continue
      participants.add(m)
      guarded(m, m.prepare, undefined)
    }
  }

  // A round runs for every few datagrams: its containers are kept and emptied rather than made anew,
  // so that a round allocates next to nothing of its own (collections pause every replica).
  const participants = new Set<RoundMember>()
  const active: RoundMember[] = []
  const sentOn = new Set<RoundMember["transport"]>()
  const taken: RoundMember[] = []
  const inRound = new Set<RoundMember>()
  const writing: RoundMember[] = []
  const writes: Effect.Effect<void>[] = []
  const reports: Effect.Effect<void>[] = []
  let heartbeats = false
  const takeFrom = (m: RoundMember) => {
    const what = guarded(m, m.take, "nothing")
    if (what !== "nothing") sentOn.add(m.transport)
    if (what === "heartbeats") heartbeats = true
    if (!m.stopped()) taken.push(m)
  }
  const finishUnwritten = (m: RoundMember) => m.finish(undefined)
  const finishWritten = (m: RoundMember) => m.finish(Exit.void)
  const anyReady = (): boolean => {
    for (const m of participants) if (!m.stopped() && guarded(m, m.hasReady, false)) return true
    return false
  }

  /** A wake-up came since the rounds last began: they run again once these end. */
  let woke = false
  /** Rounds are scheduled or under way; a wake-up then only marks `woke`. */
  let busy = false
  let closed = false
  /** The wait for a round's writes still flushing, interrupted if the scope closes meanwhile. */
  let cancelWait: (() => void) | undefined

  /** `next` after the event loop turns (as a fiber's yield does), on the scope's scheduler. */
  const later = (next: () => void) => dispatcher.scheduleTask(next, 0)

  /** Runs what members have to report, then `next`; at once when there is nothing. */
  const report = (next: () => void) => {
    if (reports.length === 0) return next()
    const all = reports.length === 1 ? reports[0]! : Effect.all(reports.slice(), { discard: true })
    reports.length = 0
    runCallback(all, {
      onExit: () => {
        if (!closed) next()
      },
    })
  }

  // The first input wakes the loop; the round begins once the event loop has turned, so that the
  // rest of what is already due (proposals resolved in the same tick, datagrams already read) joins
  // it and shares one write and one Append per follower instead of one each.
  const begin = () => {
    if (closed) return
    woke = false
    participants.clear()
    admit(participants)
    round()
  }

  const round = () => {
    if (closed) return
    active.length = 0
    for (const m of participants) if (!m.stopped() && guarded(m, m.hasReady, false)) active.push(m)
    if (active.length === 0) return rest()
    sentOn.clear()
    taken.length = 0
    heartbeats = false
    for (const m of active) takeFrom(m)
    // Co-hosted groups' heartbeats go out together: one datagram per peer process instead of
    // one per group, and one round of acks back; sent together, they stay in step after.
    if (heartbeats && members.size > taken.length) {
      inRound.clear()
      for (const m of taken) inRound.add(m)
      // Members woken meanwhile are prepared first, so the reads they hold go in this Ready too.
      admit(participants, inRound)
      for (const m of members) {
        if (inRound.has(m) || m.stopped()) continue
        if (!guarded(m, m.hasReady, false) && !guarded(m, m.alignHeartbeat, false)) continue
        participants.add(m)
        takeFrom(m)
      }
    }
    if (sentOn.size === 0) return write()
    for (const transport of sentOn) transport.flush()
    // Bun hands datagrams to the kernel when the event loop turns, not in send(): without this
    // turn, the appends would wait for this round's writes and applies.
    later(write)
  }

  // While the disk flushes, the event loop turns: inputs step the cores and each node does what
  // needs nothing unflushed; the rest joins the next round.
  const write = () => {
    if (closed) return
    writing.length = 0
    writes.length = 0
    for (const m of taken) {
      const write = m.stopped() ? undefined : guarded(m, m.write, undefined)
      if (write === undefined) {
        // Nothing of its Ready waits for a disk: what it sends leaves now, not after the others' writes.
        if (!m.stopped()) guardedWith(m, finishUnwritten)
      } else if (durableOnReturn(write)) {
        // Flushed by the caller's thread: nothing to wait for.
        if (!m.stopped()) guardedWith(m, finishWritten)
      } else {
        writing.push(m)
        writes.push(write)
      }
    }
    if (writes.length === 0) return settle()
    // The writes may all be done at once: then onExit runs (and later rounds with it) before
    // runCallback returns, and a later round's wait must not be replaced by this finished one.
    let finished = false
    const cancel = runCallback(awaitWrites(writes), {
      onExit: (exit) => {
        finished = true
        cancelWait = undefined
        if (closed) return
        const written = Exit.isSuccess(exit) ? exit.value : []
        for (let i = 0; i < writing.length; i++) {
          const m = writing[i]!
          if (!m.stopped()) guardedWith(m, (member) => member.finish(written[i]))
        }
        settle()
      },
    })
    if (!finished) cancelWait = cancel
  }

  /** What each member has to say after a Ready (`settle`) or once the rounds end (`rest`), then `next`. */
  const reportThen = (from: Iterable<RoundMember>, which: "settle" | "rest", next: () => void) => {
    for (const m of from) {
      if (m.stopped()) continue
      const effect = guarded(m, m[which], undefined)
      if (effect !== undefined) reports.push(effect)
    }
    report(next)
  }

  const settle = () => reportThen(taken, "settle", afterSettle)

  const afterSettle = () => {
    // This round's replies and acks go out before the next round's write.
    if (woken.size > 0 || anyReady()) later(nextRound)
    else nextRound()
  }

  const nextRound = () => {
    if (closed) return
    admit(participants)
    round()
  }

  const rest = () => reportThen(participants, "rest", afterRest)

  const afterRest = () => {
    if (woke) later(begin)
    else busy = false
  }

  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      closed = true
      cancelWait?.()
    }),
  )

  return {
    join: (member) =>
      Effect.gen(function* () {
        members.add(member)
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            members.delete(member)
            woken.delete(member)
          }),
        )
        return {
          wake: () => {
            woken.add(member)
            woke = true
            if (busy || closed) return
            busy = true
            later(begin)
          },
        }
      }),
  }
})

/** Waits for every write of a round (at least one); the outcome of each, in order. */
const awaitWrites = (writes: readonly Effect.Effect<void>[]): Effect.Effect<readonly Exit.Exit<void>[]> => {
  if (writes.length === 1) return Effect.map(Effect.exit(writes[0]!), (exit) => [exit])
  return Effect.all(writes.map(Effect.exit), { concurrency: "unbounded" })
}

/**
 * One loop of rounds for every Raft node built in its context: for replicas of several groups in one
 * process. Without it, each node runs rounds of its own.
 */
export class ReadyRounds extends Context.Service<ReadyRounds, ReadyRoundsShape>()("@kv/raft/ReadyRounds") {}
