import { RpcNode, type RpcNodeShape } from "@kv/rpc"
import { Context, Effect, Layer, Random } from "effect"
import { randomClientId } from "../commandClock.ts"
import { KvCommandMethod, KvGetMethod, KvReadMethod } from "../protocol.ts"
import type { KvEntry, KvOp, KvReply } from "../stateMachine/index.ts"
import { watchKvGroup } from "../watch/kvWatch.ts"
import { type WatchMethods, watchMethods } from "../watch/methods.ts"
import {
  type CasResult,
  casResult,
  fromCoordinationErrorReply,
  type KvCoordinationError,
  type KvWriteCondition,
  type ListOptions,
  type ListPage,
  type TxnRequest,
  type TxnResult,
  toCondition,
  txnOp,
  txnResult,
} from "./coordination.ts"
import { fromKvErrorReply, type KvClientError } from "./errors.ts"
import { type LeaderCallerOptions, makeLeaderCaller } from "./leaderCaller.ts"
import { type KvLeasesShape, makeKvLeases } from "./leases.ts"

export interface KvClientOptions extends LeaderCallerOptions {
  /** Addresses of the group's replicas. */
  readonly servers: readonly string[]
}

export interface KvClientShape extends WatchMethods {
  /** The id of the client's first session (a session that expires is replaced under a new id). */
  readonly clientId: number
  get(key: string): Effect.Effect<string, KvClientError>
  put(key: string, value: string): Effect.Effect<void, KvClientError>
  append(key: string, value: string): Effect.Effect<void, KvClientError>
  delete(key: string): Effect.Effect<void, KvClientError>
  /** The key's value and metadata, or undefined when absent (linearizable, like `get`). */
  getEntry(key: string): Effect.Effect<KvEntry | undefined, KvClientError>
  /** Puts `value` if `condition` holds; exactly once, a retry gets the first answer. */
  putIf(key: string, value: string, condition: KvWriteCondition): Effect.Effect<CasResult, KvClientError>
  /** Deletes the key if `condition` holds; exactly once, a retry gets the first answer. */
  deleteIf(key: string, condition: KvWriteCondition): Effect.Effect<CasResult, KvClientError>
  /** If every compare holds, runs the success ops, else the failure ops, atomically at one revision. */
  txn(request: TxnRequest): Effect.Effect<TxnResult, KvCoordinationError>
  /** One page of the keys under `prefix`, in byte order; linearizable per call. */
  list(prefix: string, options?: ListOptions): Effect.Effect<ListPage, KvClientError>
}

/** The kvraft client: the KV operations, and leases (which the sharded service does not have). */
export interface KvGroupClientShape extends KvClientShape {
  readonly leases: KvLeasesShape
}

/** Beyond this many operations in flight, new ones wait: the servers keep at most 1024 unacknowledged results per client. */
const MAX_OUTSTANDING = 1000

/** How many fresh sessions one write may go through before its `SessionExpired` reaches the caller. */
const MAX_RENEWALS = 3

/** One server-side session: an id and the sequence numbers sent under it. */
interface Session {
  readonly clientId: number
  nextSeq: number
  readonly outstanding: Set<number>
  /** The lowest sequence number not yet answered (nextSeq when none is outstanding). */
  lowestOutstanding: number
  /**
   * Whether any reply came back under this session. Until one does, the client claims no results
   * (ackedBelow 1): the servers may never have seen this id (every write so far timed out), and
   * to an unknown id claiming results they must answer OutcomeUnknown.
   */
  confirmed: boolean
}

const newSession = (clientId: number): Session => ({
  clientId,
  nextSeq: 1,
  outstanding: new Set(),
  lowestOutstanding: 1,
  confirmed: false,
})

const ackedBelow = (session: Session): number => (session.confirmed ? session.lowestOutstanding : 1)

/**
 * The low-level kvraft client: a session (client id, sequence numbers, what has been received),
 * the cached leader, and retries across servers. Safe for concurrent use: several operations may
 * be outstanding at once, and each is applied exactly once.
 *
 * When the servers answer that the session expired, the write was certainly not applied: the
 * client moves to a fresh session (a new id, never the old one again, so no late copy of an old
 * write can be taken for a new one) and resends it. Only `OutcomeUnknown` reaches the caller.
 */
export const makeKvClient = (rpc: RpcNodeShape, options: KvClientOptions): Effect.Effect<KvGroupClientShape> =>
  Effect.gen(function* (): Effect.fn.Return<KvGroupClientShape> {
    if (options.servers.length === 0) return yield* Effect.die(new Error("a kv client needs at least one server"))
    const caller = makeLeaderCaller(rpc, options.servers, options)
    const watch = watchMethods(
      (target, watchOptions) => watchKvGroup(rpc, () => caller.servers, target, watchOptions, options),
      yield* Effect.context<never>(),
    )
    // 53-bit ids make a collision between clients vanishingly unlikely without coordination.
    const random = yield* Random.Random
    const clientId = randomClientId(random)
    /** New writes take their seq here; a session that expired is replaced, and never used again. */
    let current = newSession(clientId)
    let inFlight = 0
    /** Operations waiting for a slot (see canStart). */
    const queued: (() => void)[] = []

    // A counter, not a Semaphore: below the limit (always, in practice) taking a slot costs nothing.
    // Both bounds: operations in flight, and the distance from the oldest unanswered seq to the next
    // one (the server refuses seq >= its floor + 1024; one slow operation must not let 1,000 later
    // ones push the next seq past that).
    // An unconfirmed session claims nothing (its floor at the servers is 1); when it runs out of
    // seqs, the next write starts a fresh one.
    const canStart = () =>
      inFlight < MAX_OUTSTANDING &&
      (!current.confirmed || current.nextSeq - current.lowestOutstanding < MAX_OUTSTANDING)
    /** Takes a slot and the next sequence number together, so a woken waiter cannot overshoot the window. */
    const take = (): readonly [Session, number] => {
      inFlight++
      if (!current.confirmed && current.nextSeq >= MAX_OUTSTANDING) current = newSession(randomClientId(random))
      const session = current
      const seq = session.nextSeq++
      session.outstanding.add(seq)
      if (session.outstanding.size === 1) session.lowestOutstanding = seq
      return [session, seq]
    }
    const wake = () => {
      while (queued.length > 0 && canStart()) queued.shift()!()
    }
    const acquire: Effect.Effect<readonly [Session, number]> = Effect.suspend(() => {
      if (queued.length === 0 && canStart()) return Effect.succeed(take())
      return Effect.callback<readonly [Session, number]>((resume) => {
        const waiter = () => resume(Effect.succeed(take()))
        queued.push(waiter)
        return Effect.sync(() => {
          const at = queued.indexOf(waiter)
          if (at >= 0) queued.splice(at, 1)
        })
      })
    })
    const release = (session: Session, seq: number) => {
      session.outstanding.delete(seq)
      if (seq === session.lowestOutstanding) {
        while (session.lowestOutstanding < session.nextSeq && !session.outstanding.has(session.lowestOutstanding)) {
          session.lowestOutstanding++
        }
      }
      inFlight--
      wake()
    }
    /** The servers no longer hold `session`: later writes go to a fresh one. */
    const retire = (session: Session) => {
      if (current !== session) return
      current = newSession(randomClientId(random))
      wake()
    }

    const send = (op: KvOp, renewals: number): Effect.Effect<KvReply | undefined, KvCoordinationError> =>
      Effect.flatMap(acquire, ([session, seq]) =>
        caller
          .call(KvCommandMethod, () => ({ clientId: session.clientId, seq, ackedBelow: ackedBelow(session), op }), {
            operation: op.op,
            key: op.key,
          })
          .pipe(
            Effect.onExit(() => Effect.sync(() => release(session, seq))),
            Effect.flatMap((reply): Effect.Effect<KvReply | undefined, KvCoordinationError> => {
              session.confirmed = true
              if (reply.ok) return Effect.succeed("reply" in reply ? reply.reply : undefined)
              if (reply.error === "SessionExpired" || reply.error === "OutcomeUnknown") retire(session)
              // Not applied and never will be: the same write under a fresh session is a new write.
              if (reply.error === "SessionExpired" && renewals < MAX_RENEWALS) return send(op, renewals + 1)
              return fromCoordinationErrorReply(reply)
            }),
          ),
      )

    // Only transactions can be refused as invalid; the other writes are checked on this side too.
    const narrow = <A>(effect: Effect.Effect<A, KvCoordinationError>): Effect.Effect<A, KvClientError> =>
      Effect.catchTags(effect, {
        CrossShard: (e) => Effect.die(e),
        InvalidRequest: (e) => Effect.die(e),
        LeaseNotFound: (e) => Effect.die(e),
      })
    const write = (op: KvOp): Effect.Effect<void, KvClientError> => narrow(Effect.asVoid(send(op, 0)))

    const read = (request: typeof KvReadMethod.request.Type, key: string) =>
      caller.call(KvReadMethod, () => request, { operation: request.read, key })

    const get = (key: string): Effect.Effect<string, KvClientError> =>
      caller
        .call(KvGetMethod, () => ({ key }), { operation: "get", key })
        .pipe(Effect.flatMap((reply) => (reply.ok ? Effect.succeed(reply.value) : fromKvErrorReply(reply))))

    return {
      clientId,
      leases: makeKvLeases((op) => send(op, 0), caller),
      ...watch,
      get,
      put: (key, value) => write({ op: "put", key, value }),
      append: (key, value) => write({ op: "append", key, value }),
      delete: (key) => write({ op: "delete", key }),
      getEntry: (key) =>
        read({ read: "entry", key }, key).pipe(
          Effect.flatMap((reply) =>
            !reply.ok
              ? fromKvErrorReply(reply)
              : "entry" in reply
                ? Effect.succeed(reply.entry ?? undefined)
                : Effect.die(new Error("kv.read entry answered with a listing")),
          ),
        ),
      putIf: (key, value, condition) =>
        narrow(Effect.flatMap(send({ op: "casPut", key, value, when: toCondition(condition) }, 0), casResult)),
      deleteIf: (key, condition) =>
        narrow(Effect.flatMap(send({ op: "casDelete", key, when: toCondition(condition) }, 0), casResult)),
      txn: (request) => Effect.flatMap(send(txnOp(request), 0), txnResult),
      list: (prefix, options = {}) =>
        read(
          {
            read: "list",
            prefix,
            ...(options.after === undefined ? {} : { after: options.after }),
            ...(options.limit === undefined ? {} : { limit: options.limit }),
            ...(options.keysOnly === undefined ? {} : { keysOnly: options.keysOnly }),
          },
          prefix,
        ).pipe(
          Effect.flatMap((reply) =>
            !reply.ok
              ? fromKvErrorReply(reply)
              : "entries" in reply
                ? Effect.succeed(pageOf(reply.entries, reply.more))
                : Effect.die(new Error("kv.read list answered with an entry")),
          ),
        ),
    }
  })

const pageOf = (entries: ListPage["entries"], more: boolean): ListPage =>
  more && entries.length > 0 ? { entries, next: entries[entries.length - 1]!.key } : { entries }

export class KvClient extends Context.Service<KvClient, KvClientShape>()("@kv/kvraft/KvClient") {
  static layer(options: KvClientOptions): Layer.Layer<KvClient, never, RpcNode> {
    return Layer.effect(
      KvClient,
      Effect.flatMap(
        RpcNode.useSync((rpc) => rpc),
        (rpc) => makeKvClient(rpc, options),
      ),
    )
  }
}
