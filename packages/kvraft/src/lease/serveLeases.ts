/**
 * The lease service of a kvraft replica: its reckoning of every lease's deadline (kept on every
 * replica, from the entries it applies), the leader's loop that proposes expiries and checkpoints,
 * and `kv.lease` (a lease's time left, or every lease) answered by the leader.
 */
import type { RpcNodeShape } from "@kv/rpc"
import { type Clock, Duration, Effect, type Scope } from "effect"
import { monotonicMs } from "../commandClock.ts"
import { KvLeaseMethod, type LeaseReply, type LeaseStatus, type WrongLeaderReply } from "../protocol.ts"
import type { RsmShape, WrongLeader } from "../rsm/index.ts"
import { encodeLeaderCommand, type KvResult, type KvStateMachine } from "../stateMachine/index.ts"
import { LeaseDeadlines } from "./leaseDeadlines.ts"

export interface LeaseOptions {
  /** How often a replica advances lease time and its leader looks for leases that ran out. Default 100 ms. */
  readonly tickMs?: number
  /**
   * How often the leader records every lease's time left in the log (only while leases exist).
   * A replica that restarts and then leads may let a lease outlive its end by about this much.
   * Default 5,000 ms.
   */
  readonly checkpointMs?: number
}

export interface LeaseServing {
  /** Call with every state machine the replica builds or restores: its leases get deadlines here. */
  readonly adopt: (machine: KvStateMachine) => void
  /** Leases with deadlines here (a gauge). */
  readonly count: () => number
}

/** Deadlines for `machine`'s leases, kept current as it applies entries. */
export const makeLeaseDeadlines = (clock: Clock.Clock) => {
  const deadlines = new LeaseDeadlines(() => monotonicMs(clock))
  let count = 0
  const adopt = (machine: KvStateMachine): void => {
    deadlines.clear()
    const leases = machine.leases.all()
    for (const lease of leases) deadlines.set(lease.id, lease.remainingMs)
    count = leases.length
    machine.onLease = (id, remainingMs) => {
      if (remainingMs === undefined) deadlines.delete(id)
      else deadlines.set(id, remainingMs)
      count = machine.leases.size
    }
  }
  return { deadlines, adopt, count: () => count }
}

/**
 * Runs the leader's lease loop for the life of the scope, and answers `kv.lease`. Only a leader
 * proposes: an expiry names the renewals it saw, so one decided before a keep-alive committed is
 * void when applied; each lease gets at most one expiry proposal per renewal from this replica.
 */
export const serveLeases = (
  rpc: RpcNodeShape,
  rsm: RsmShape<KvResult>,
  current: () => KvStateMachine,
  deadlines: LeaseDeadlines,
  wrongLeader: (error: WrongLeader) => typeof WrongLeaderReply.Type,
  options: LeaseOptions = {},
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const tickMs = options.tickMs ?? 100
    const checkpointMs = options.checkpointMs ?? 5_000
    const proposed = new Map<number, number>()
    let lastCheckpoint = deadlines.now()
    const isLeader = () => rsm.raft.status().role === "leader"
    /** Proposes without waiting; `onRefused` runs if it is not applied (no longer leader, a transfer...). */
    const propose = (bytes: Uint8Array, onRefused: () => void = () => {}) =>
      rsm.submit(bytes).pipe(
        Effect.catchCause(() => Effect.sync(onRefused)),
        Effect.asVoid,
        Effect.forkDetach,
      )

    const round = Effect.gen(function* () {
      const now = deadlines.now()
      if (!isLeader()) {
        proposed.clear()
        lastCheckpoint = now
        return
      }
      const machine = current()
      for (const id of deadlines.expired()) {
        const lease = machine.leases.get(id)
        if (lease === undefined || proposed.get(id) === lease.renewals) continue
        proposed.set(id, lease.renewals)
        const renewals = lease.renewals
        // Refused: proposed again on a later round while this replica leads.
        yield* propose(encodeLeaderCommand({ kind: "leaseExpire", lease: id, renewals }), () => {
          if (proposed.get(id) === renewals) proposed.delete(id)
        })
      }
      for (const id of proposed.keys()) if (!machine.leases.has(id)) proposed.delete(id)
      if (now - lastCheckpoint >= checkpointMs) {
        lastCheckpoint = now
        // Each row names the renewals it was counted at: a keep-alive still in flight wins over it.
        const remaining = deadlines.snapshotRemaining().flatMap(([id, ms]): [number, number, number][] => {
          const lease = machine.leases.get(id)
          return lease === undefined ? [] : [[id, ms, lease.renewals]]
        })
        if (remaining.length > 0) yield* propose(encodeLeaderCommand({ kind: "leaseCheckpoint", remaining }))
      }
    })
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.gen(function* () {
          yield* round
          yield* Effect.sleep(Duration.millis(tickMs))
          // Expiry is the leader's work: a follower sleeps until it leads rather than waking every
          // tick. Its leadership begins now, as the round before would have counted it.
          if (!isLeader()) {
            yield* rsm.raft.leading
            proposed.clear()
            lastCheckpoint = deadlines.now()
          }
        }),
      ),
    )

    const statusOf = (machine: KvStateMachine, id: number, withKeys: boolean): LeaseStatus | undefined => {
      const lease = machine.leases.get(id)
      if (lease === undefined) return undefined
      return {
        lease: id,
        ttlMs: lease.ttlMs,
        remainingMs: Math.ceil(deadlines.remaining(id) ?? lease.remainingMs),
        keys: withKeys ? lease.keys : [],
      }
    }
    rpc.handleWith(KvLeaseMethod, (request, _from, reply: (reply: LeaseReply) => void) => {
      rsm.readWith(
        (): LeaseReply => {
          const machine = current()
          if (request.lease > 0) {
            const one = statusOf(machine, request.lease, true)
            return { ok: true, leases: one === undefined ? [] : [one] }
          }
          const all = machine.leases.all().map((l) => statusOf(machine, l.id, false)!)
          return { ok: true, leases: all }
        },
        (outcome) => reply(outcome.ok ? outcome.value : wrongLeader(outcome.error)),
      )
    })
  })
