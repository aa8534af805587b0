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
import { Context, Effect, type Exit, Latch, type Scope } from "effect"

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
  /** Starts the taken Ready's durable write and applies what it commits; the wait for the write. */
  readonly write: () => Effect.Effect<void> | undefined
  /** Once the write is durable (or failed): what waited for it leaves, and the core advances. */
  readonly finish: (written: Exit.Exit<void> | undefined) => void
  /** After each Ready: membership changes the node should learn or report. */
  readonly settle: Effect.Effect<void>
  /** When the rounds end: compaction and leadership left over. */
  readonly rest: Effect.Effect<void>
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

/** Starts a loop of rounds in the current scope. */
export const makeReadyRounds: Effect.Effect<ReadyRoundsShape, never, Scope.Scope> = Effect.gen(function* () {
  const signal = Latch.makeUnsafe(false)
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

  const loop = Effect.gen(function* () {
    while (true) {
      yield* signal.await
      // The first input resumes this fiber at once; yielding lets the rest of what is already due
      // (proposals resolved in the same tick, datagrams already read) join this round, so they share
      // one write and one Append per follower instead of one each.
      yield* Effect.yieldNow
      signal.closeUnsafe()
      const participants = new Set<RoundMember>()
      admit(participants)
      while (true) {
        const active: RoundMember[] = []
        for (const m of participants) if (!m.stopped() && guarded(m, m.hasReady, false)) active.push(m)
        if (active.length === 0) break
        const sentOn = new Set<RoundMember["transport"]>()
        const taken: RoundMember[] = []
        let heartbeats = false
        const takeFrom = (m: RoundMember) => {
          const what = guarded(m, m.take, "nothing")
          if (what !== "nothing") sentOn.add(m.transport)
          if (what === "heartbeats") heartbeats = true
          if (!m.stopped()) taken.push(m)
        }
        for (const m of active) takeFrom(m)
        // Co-hosted groups' heartbeats go out together: one datagram per peer process instead of
        // one per group, and one round of acks back; sent together, they stay in step after.
        if (heartbeats && members.size > taken.length) {
          const inRound = new Set(taken)
          // Members woken meanwhile are prepared first, so the reads they hold go in this Ready too.
          admit(participants, inRound)
          for (const m of members) {
            if (inRound.has(m) || m.stopped()) continue
            if (!guarded(m, m.hasReady, false) && !guarded(m, m.alignHeartbeat, false)) continue
            participants.add(m)
            takeFrom(m)
          }
        }
        if (sentOn.size > 0) {
          for (const transport of sentOn) transport.flush()
          // Bun hands datagrams to the kernel when the event loop turns, not in send(): without this
          // turn, the appends would wait for this round's writes and applies.
          yield* Effect.yieldNow
        }
        // While the disk flushes, the event loop turns: inputs step the cores and each node's flush
        // watcher acts on what needs nothing unflushed; the rest joins the next round.
        const writing: RoundMember[] = []
        const writes: Effect.Effect<void>[] = []
        for (const m of taken) {
          const write = m.stopped() ? undefined : guarded(m, m.write, undefined)
          if (write !== undefined) {
            writing.push(m)
            writes.push(write)
          } else if (!m.stopped()) {
            // Nothing of its Ready waits for a disk: what it sends leaves now, not after the others' writes.
            guarded(m, () => m.finish(undefined), undefined)
          }
        }
        const written = yield* awaitWrites(writes)
        for (let i = 0; i < writing.length; i++) {
          const m = writing[i]!
          if (!m.stopped()) guarded(m, () => m.finish(written[i]), undefined)
        }
        for (const m of taken) if (!m.stopped()) yield* m.settle
        // This round's replies and acks go out before the next round's write.
        const more = woken.size > 0 || [...participants].some((m) => !m.stopped() && guarded(m, m.hasReady, false))
        if (more) yield* Effect.yieldNow
        admit(participants)
      }
      for (const m of participants) if (!m.stopped()) yield* m.rest
    }
  })
  yield* Effect.forkScoped(loop)

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
            signal.openUnsafe()
          },
        }
      }),
  }
})

/** Waits for every write of a round; the outcome of each, in order. */
const awaitWrites = (writes: readonly Effect.Effect<void>[]): Effect.Effect<readonly Exit.Exit<void>[]> => {
  if (writes.length === 0) return Effect.succeed([])
  if (writes.length === 1) return Effect.map(Effect.exit(writes[0]!), (exit) => [exit])
  return Effect.all(writes.map(Effect.exit), { concurrency: "unbounded" })
}

/**
 * One loop of rounds for every Raft node built in its context: for replicas of several groups in one
 * process. Without it, each node runs rounds of its own.
 */
export class ReadyRounds extends Context.Service<ReadyRounds, ReadyRoundsShape>()("@kv/raft/ReadyRounds") {}
