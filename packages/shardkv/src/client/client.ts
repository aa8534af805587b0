import {
  type CallWatch,
  CrossShard,
  casResult,
  compareKeys,
  fromCoordinationErrorReply,
  fromKvErrorReply,
  type KvClientError,
  type KvClientShape,
  type KvCoordinationError,
  type KvListEntry,
  type KvOp,
  type KvReply,
  type LeaderCaller,
  type ListPage,
  makeLeaderCaller,
  maxListLimit,
  monotonicMs,
  opKeys,
  randomClientId,
  Timeout,
  toCondition,
  txnOp,
  txnResult,
  watchMethods,
} from "@kv/kvraft"
import { type PermissionDenied, RpcNode, type RpcNodeShape } from "@kv/rpc"
import { type Config, type Gid, hashTagOf, makeControllerClient, noGroup, shardOf } from "@kv/shardctrler"
import { Clock, Context, Duration, Effect, Layer, Option, Random, Semaphore } from "effect"
import {
  groupRpc,
  type ShardCommandReply,
  type ShardGetReply,
  ShardKvCommandMethod,
  ShardKvGetMethod,
  ShardKvReadMethod,
  type ShardReadReply,
} from "../protocol.ts"
import { watchShards } from "../watch/shardWatch.ts"

/** Sequence numbers a shard session may run ahead of its oldest unanswered one (the servers allow 1024). */
const SEQ_WINDOW = 1000

export interface ShardKvClientOptions {
  /** Addresses of the shard-controller replicas. */
  readonly controllers: readonly string[]
  /** Overall bound for one operation, retries and reconfigurations included; then `Timeout`. Default 30 s. */
  readonly deadlineMs?: number
  /** How long one group gets (all its replicas) before the configuration is refreshed. Default 2 s. */
  readonly groupAttemptMs?: number
  /**
   * How long one replica gets before the next one of its group is tried. Default 1 s, as the kvraft
   * client's: a leader slowed by lost datagrams often answers within it, where moving on costs a
   * redirect from a follower and a second wait at the same leader.
   */
  readonly perServerMs?: number
  /**
   * Fixed resend interval to the same replica while waiting for its reply. Default: the rpc node's
   * retransmission timeout from measured round trips, so a lost request costs about one round trip.
   */
  readonly attemptTimeoutMs?: number
}

/** Unanswered sends of one attempt after which the client asks whether the shard moved. */
const PROBE_AFTER_UNANSWERED = 2
/**
 * Least time between two such questions from one client (the groups ask as often): slow replies
 * and lost datagrams leave requests unanswered without any shard moving.
 */
const PROBE_INTERVAL_MS = 100

/** Beyond this many operations in flight, new ones wait (the servers keep 1024 results per client and shard). */
const MAX_OUTSTANDING = 1000

/** How many fresh sessions one write may go through before its `SessionExpired` reaches the caller. */
const MAX_RENEWALS = 3

/** The client's session at one shard (sessions live in the shard, and travel with it). */
interface ShardSession {
  readonly clientId: number
  nextSeq: number
  readonly outstanding: Set<number>
  /**
   * Whether any reply came back under this session. Until one does, it claims no results
   * (ackedBelow 1): the shard may never have seen this id, and to an unknown id claiming results
   * it must answer OutcomeUnknown.
   */
  confirmed: boolean
}

// 53-bit ids make a collision between clients vanishingly unlikely without coordination.

interface WrongGroupReply {
  readonly ok: false
  readonly error: "WrongGroup"
}

type ShardReply = ShardCommandReply | ShardGetReply | ShardReadReply

/** An operation's name, key and start (monotonic ms), for its overall deadline. */
interface Bound {
  readonly operation: string
  readonly key: string
  readonly startMs: number
}

const isWrongGroup = (reply: ShardReply): boolean => !reply.ok && reply.error === "WrongGroup"

/**
 * The sharded-KV client: caches the latest configuration, routes each key to the group serving
 * its shard, follows each group's leader, and refreshes the configuration when a group says
 * WrongGroup or stops answering. Writes are numbered per shard (seq, ackedBelow), because a
 * shard's client sessions travel with the shard. Safe for concurrent use. A write refused because
 * the shard's session expired (certainly not applied) is resent under a fresh session for that
 * shard; only `OutcomeUnknown` reaches the caller.
 */
export const makeShardKvClient = (rpc: RpcNodeShape, options: ShardKvClientOptions): Effect.Effect<KvClientShape> =>
  Effect.gen(function* (): Effect.fn.Return<KvClientShape> {
    if (options.controllers.length === 0) {
      return yield* Effect.die(new Error("a shardkv client needs at least one controller"))
    }
    const deadlineMs = options.deadlineMs ?? 30_000
    const callerOptions = {
      // One group attempt never outlasts the operation's own bound (see `route`).
      deadlineMs: Math.min(options.groupAttemptMs ?? 2_000, deadlineMs),
      perServerMs: options.perServerMs ?? 1_000,
      attemptTimeoutMs: options.attemptTimeoutMs,
    }
    const controller = yield* makeControllerClient(rpc, {
      controllers: options.controllers,
      deadlineMs: 2_000,
      perServerMs: 500,
      attemptTimeoutMs: callerOptions.attemptTimeoutMs,
    })
    const random = yield* Random.Random
    const clock = yield* Clock.Clock
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    const clientId = randomClientId(random)
    let config: Config | undefined
    // Bumped after every refresh, so that operations that failed on the same view share one query.
    let generation = 0
    const refreshing = Semaphore.makeUnsafe(1)
    const groups = new Map<Gid, LeaderCaller>()
    const sessions = new Map<number, ShardSession>()
    const permits = Semaphore.makeUnsafe(MAX_OUTSTANDING)
    /** Checks waiting on the controller query in flight for attempts a group left unanswered. */
    let probeWaiters: Array<() => boolean> | undefined
    let lastProbeMs = Number.NEGATIVE_INFINITY

    const refresh = (seen: number): Effect.Effect<void> =>
      Semaphore.withPermits(
        refreshing,
        1,
      )(
        Effect.gen(function* () {
          if (generation !== seen) return
          const latest = yield* controller.query(-1).pipe(Effect.option)
          if (latest._tag === "Some" && (config === undefined || latest.value.num > config.num)) {
            config = latest.value
            for (const [gid, caller] of groups) {
              const servers = config.groups[String(gid)]
              if (servers !== undefined && servers.length > 0) caller.setServers(servers)
            }
          }
          generation++
        }),
      )

    const backoff = Effect.suspend(() => Effect.sleep(Duration.millis(50 + random.nextDoubleUnsafe() * 50)))

    /** The configuration, fetched if none is cached yet. */
    const currentConfig: Effect.Effect<Config> = Effect.gen(function* () {
      while (config === undefined) {
        yield* refresh(generation)
        if (config === undefined) yield* backoff
      }
      return config
    })

    const callerFor = (gid: Gid, servers: readonly string[]): LeaderCaller => {
      let caller = groups.get(gid)
      if (caller === undefined) {
        caller = makeLeaderCaller(groupRpc(rpc, gid), servers, callerOptions)
        groups.set(gid, caller)
      }
      return caller
    }

    /** Where `key`'s shard (or shard number `key`) is served in `current`; undefined if by no group yet. */
    const targetOf = (current: Config, key: string | number) => {
      const shard = typeof key === "number" ? key : shardOf(key, current.shards.length)
      const gid = current.shards[shard] ?? noGroup
      const servers = current.groups[String(gid)] ?? []
      return gid === noGroup || servers.length === 0 ? undefined : callerFor(gid, servers)
    }

    /**
     * Once a group has left an attempt's request unanswered twice (one lost datagram is common, two
     * in a row rarely only that), the controller is asked whether the shard has moved (at most once
     * per PROBE_INTERVAL_MS per client; attempts waiting meanwhile share the answer), and if it has,
     * the attempt ends and the operation goes to the new owner. Otherwise a group that gave the shard
     * away and then went silent (crashed, cut off) held every operation of a client on the older
     * configuration for a whole group attempt.
     */
    const watchFor = (key: string | number, caller: LeaderCaller): CallWatch => {
      let unanswered = 0
      return {
        onUnanswered: (abandon) => {
          if (++unanswered < PROBE_AFTER_UNANSWERED) return
          const moved = () => {
            const latest = config
            if (latest === undefined || targetOf(latest, key) === caller) return false
            abandon()
            return true
          }
          // A refresh since the attempt began (another operation's) may already know.
          if (moved()) return
          if (probeWaiters !== undefined) {
            probeWaiters.push(moved)
            return
          }
          const now = monotonicMs(clock)
          if (now - lastProbeMs < PROBE_INTERVAL_MS) return
          lastProbeMs = now
          const waiters = [moved]
          probeWaiters = waiters
          runFork(
            Effect.ensuring(
              refresh(generation),
              Effect.sync(() => {
                probeWaiters = undefined
                for (const waiter of waiters) waiter()
              }),
            ),
          )
        },
      }
    }

    /** One group attempt: its reply, or None when the group did not answer in time. */
    const attempt = <Res extends ShardReply>(
      key: string | number,
      caller: LeaderCaller,
      send: (caller: LeaderCaller, watch: CallWatch) => Effect.Effect<Res, Timeout | PermissionDenied>,
    ): Effect.Effect<Option.Option<Res>, PermissionDenied> =>
      // PermissionDenied goes to the caller: every group would refuse this key the same way.
      send(caller, watchFor(key, caller)).pipe(
        Effect.map(Option.some),
        Effect.catchTag("Timeout", () => Effect.succeed(Option.none())),
      )

    /**
     * Until a group answers other than WrongGroup: refreshes the configuration after a refusal or
     * silence (`failed`: the reply of an attempt already made on the configuration numbered `triedOn`),
     * backing off when the latest configuration was refused too. Unbounded: `route` bounds it.
     */
    const retryRoute = <Res extends ShardReply>(
      key: string | number,
      send: (caller: LeaderCaller, watch: CallWatch) => Effect.Effect<Res, Timeout | PermissionDenied>,
      failed: { readonly reply: Option.Option<Res>; readonly seen: number; readonly triedOn: number } | undefined,
    ): Effect.Effect<Exclude<Res, WrongGroupReply>, PermissionDenied> =>
      Effect.gen(function* () {
        if (failed !== undefined) {
          yield* refresh(failed.seen)
          // Refused on the latest configuration: the group has not caught up yet, give it a moment.
          if (failed.reply._tag === "Some" && config?.num === failed.triedOn) yield* backoff
        }
        while (true) {
          const seen = generation
          const current = yield* currentConfig
          const caller = targetOf(current, key)
          if (caller === undefined) {
            // No group serves the shard yet (nothing joined): wait for a configuration that has one.
            yield* backoff
            yield* refresh(seen)
            continue
          }
          const reply = yield* attempt(key, caller, send)
          if (reply._tag === "Some" && !isWrongGroup(reply.value)) return reply.value as Exclude<Res, WrongGroupReply>
          yield* refresh(seen)
          if (reply._tag === "Some" && config?.num === current.num) yield* backoff
        }
      })

    /**
     * Sends to the group serving `key`'s shard (or shard number `key`) until it answers other than
     * WrongGroup, refreshing the configuration whenever the group refuses or does not answer, within
     * `deadlineMs` of `startMs`; then `Timeout`. The usual case (the configuration is cached and its
     * group answers) is one attempt, bounded by the group attempt's own deadline, which is never
     * longer than the operation's: only the retries get a timer of their own.
     */
    const route = <Res extends ShardReply>(
      key: string | number,
      send: (caller: LeaderCaller, watch: CallWatch) => Effect.Effect<Res, Timeout | PermissionDenied>,
      bound: Bound,
    ): Effect.Effect<Exclude<Res, WrongGroupReply>, Timeout | PermissionDenied> => {
      const seen = generation
      const current = config
      const caller = current === undefined ? undefined : targetOf(current, key)
      if (current === undefined || caller === undefined) return within(bound, retryRoute(key, send, undefined))
      return Effect.flatMap(attempt(key, caller, send), (reply) =>
        reply._tag === "Some" && !isWrongGroup(reply.value)
          ? Effect.succeed(reply.value as Exclude<Res, WrongGroupReply>)
          : within(bound, retryRoute(key, send, { reply, seen, triedOn: current.num })),
      )
    }

    const boundOf = (operation: string, key: string): Effect.Effect<Bound> =>
      Clock.clockWith((clock) => Effect.succeed({ operation, key, startMs: monotonicMs(clock) }))

    /** `effect` within what is left of the operation's `deadlineMs`; then `Timeout`. */
    const within = <A, E>(bound: Bound, effect: Effect.Effect<A, E>): Effect.Effect<A, E | Timeout> =>
      Clock.clockWith((clock) => {
        const left = deadlineMs - (monotonicMs(clock) - bound.startMs)
        const timeout = new Timeout({ operation: bound.operation, key: bound.key, afterMs: deadlineMs })
        if (left <= 0) return Effect.fail(timeout)
        return effect.pipe(
          Effect.timeoutOrElse({ duration: Duration.millis(left), orElse: () => Effect.fail(timeout) }),
        )
      })

    /**
     * The shard's current session. One that expired is replaced under a new id and never used
     * again, so no late copy of an old write can be taken for a new one; one that never got a
     * reply is replaced when it runs out of seqs (it claims no results, so its window is fixed).
     */
    const sessionOf = (shard: number): ShardSession => {
      let session = sessions.get(shard)
      if (session === undefined || (!session.confirmed && session.nextSeq >= SEQ_WINDOW)) {
        session = {
          clientId: session === undefined ? clientId : randomClientId(random),
          nextSeq: 1,
          outstanding: new Set(),
          confirmed: false,
        }
        sessions.set(shard, session)
      }
      return session
    }

    const retire = (shard: number, session: ShardSession) => {
      if (sessions.get(shard) !== session) return
      sessions.set(shard, { clientId: randomClientId(random), nextSeq: 1, outstanding: new Set(), confirmed: false })
    }

    const lowestOutstanding = (session: ShardSession): number => {
      let min = session.nextSeq
      for (const seq of session.outstanding) if (seq < min) min = seq
      return min
    }

    const ackedBelow = (session: ShardSession): number => (session.confirmed ? lowestOutstanding(session) : 1)

    const command = (op: KvOp): Effect.Effect<KvReply | undefined, KvCoordinationError> =>
      Semaphore.withPermits(
        permits,
        1,
      )(
        Effect.flatMap(boundOf(op.op, op.key), (bound) =>
          Effect.gen(function* () {
            const current = config ?? (yield* within(bound, currentConfig))
            const shard = shardOf(op.key, current.shards.length)
            const other = opKeys(op).find((key) => shardOf(key, current.shards.length) !== shard)
            if (other !== undefined) {
              return yield* new CrossShard({
                message:
                  `the transaction names ${JSON.stringify(op.key)} and ${JSON.stringify(other)}, of different ` +
                  `shards: give its keys one hash tag, as in "{user42}.a"`,
              })
            }
            for (let renewals = 0; ; renewals++) {
              let session = sessionOf(shard)
              // The servers refuse seq >= floor + 1024: one slow operation must not let later ones in
              // the same shard push the next seq that far past it. Rare, so a short poll is enough.
              while (session.confirmed && session.nextSeq - lowestOutstanding(session) >= SEQ_WINDOW) {
                yield* within(bound, Effect.sleep(Duration.millis(2)))
                session = sessionOf(shard)
              }
              const seq = session.nextSeq++
              session.outstanding.add(seq)
              const { clientId: id } = session
              const reply = yield* route(
                op.key,
                (caller, watch) =>
                  caller.call(
                    ShardKvCommandMethod,
                    () => ({ clientId: id, seq, ackedBelow: ackedBelow(session), op }),
                    bound,
                    watch,
                  ),
                bound,
              ).pipe(Effect.ensuring(Effect.sync(() => session.outstanding.delete(seq))))
              session.confirmed = true
              if (reply.ok) return "reply" in reply ? reply.reply : undefined
              if (reply.error === "SessionExpired" || reply.error === "OutcomeUnknown") retire(shard, session)
              // Not applied and never will be: the same write under a fresh session is a new write.
              if (reply.error === "SessionExpired" && renewals < MAX_RENEWALS) continue
              return yield* fromCoordinationErrorReply(reply)
            }
          }),
        ),
      )

    const get = (key: string): Effect.Effect<string, KvClientError> =>
      Effect.flatMap(boundOf("get", key), (bound) =>
        Effect.flatMap(
          route(key, (caller, watch) => caller.call(ShardKvGetMethod, () => ({ key }), bound, watch), bound),
          (reply) => (reply.ok ? Effect.succeed(reply.value) : fromKvErrorReply(reply)),
        ),
      )

    // Only transactions can be refused as invalid or cross-shard; other writes are checked here too.
    const narrow = <A>(effect: Effect.Effect<A, KvCoordinationError>): Effect.Effect<A, KvClientError> =>
      Effect.catchTags(effect, {
        CrossShard: (e) => Effect.die(e),
        InvalidRequest: (e) => Effect.die(e),
        LeaseNotFound: (e) => Effect.die(e),
      })
    const write = (op: KvOp): Effect.Effect<void, KvClientError> => narrow(Effect.asVoid(command(op)))

    const getEntry = (key: string) =>
      Effect.flatMap(boundOf("getEntry", key), (bound) =>
        Effect.gen(function* () {
          const reply = yield* route(
            key,
            (caller, watch) => caller.call(ShardKvReadMethod, () => ({ read: "entry", key }) as const, bound, watch),
            bound,
          )
          if (!reply.ok) return yield* fromKvErrorReply(reply)
          if (!("entry" in reply)) return yield* Effect.die(new Error("shardkv.read entry answered with a listing"))
          return reply.entry ?? undefined
        }),
      )

    /** One shard's page of the listing. */
    const listShard = (
      bound: Bound,
      shard: number,
      prefix: string,
      after: string | undefined,
      limit: number,
      keysOnly: boolean,
    ) =>
      Effect.gen(function* () {
        const request = {
          read: "list",
          prefix,
          shard,
          limit,
          keysOnly,
          ...(after === undefined ? {} : { after }),
        } as const
        const reply = yield* route(
          shard,
          (caller, watch) => caller.call(ShardKvReadMethod, () => request, bound, watch),
          bound,
        )
        if (!reply.ok) return yield* fromKvErrorReply(reply)
        if (!("entries" in reply)) return yield* Effect.die(new Error("shardkv.read list answered with an entry"))
        return reply
      })

    /**
     * A page of the listing: each shard's page from `after` on (one shard when the prefix holds a
     * hash tag, since every key under it shares that shard), merged in byte order and cut at
     * `limit`. Each shard's part is read linearizably, at its own moment; the pages are not one
     * snapshot across shards.
     */
    const list = (
      prefix: string,
      options: { after?: string | undefined; limit?: number | undefined; keysOnly?: boolean | undefined } = {},
    ) =>
      Effect.flatMap(boundOf("list", prefix), (bound) =>
        within(
          bound,
          Effect.gen(function* () {
            const current = yield* currentConfig
            const nShards = current.shards.length
            const limit = Math.max(1, Math.min(options.limit ?? maxListLimit, maxListLimit))
            const shards =
              hashTagOf(prefix) !== prefix ? [shardOf(prefix, nShards)] : Array.from({ length: nShards }, (_, i) => i)
            const pages = yield* Effect.forEach(
              shards,
              (shard) => listShard(bound, shard, prefix, options.after, limit, options.keysOnly === true),
              { concurrency: 4 },
            )
            const merged: KvListEntry[] = pages
              .flatMap((page) => page.entries)
              .sort((a, b) => compareKeys(a.key, b.key))
            // A shard's page may stop early (its byte bound): nothing past its last key is known yet.
            let cut = Math.min(limit, merged.length)
            for (const page of pages) {
              const last = page.entries[page.entries.length - 1]
              if (!page.more || last === undefined) continue
              const at = merged.findIndex((e) => e.key === last.key)
              if (at + 1 < cut) cut = at + 1
            }
            const entries = merged.slice(0, cut)
            const more = cut < merged.length || pages.some((page) => page.more)
            const next = more && entries.length > 0 ? entries[entries.length - 1]!.key : undefined
            const page: ListPage = next === undefined ? { entries } : { entries, next }
            return page
          }),
        ),
      )

    const watch = watchMethods(
      (target, watchOptions) =>
        watchShards(
          rpc,
          { config: currentConfig, generation: () => generation, refresh, backoff },
          target,
          watchOptions,
          callerOptions,
        ),
      yield* Effect.context<never>(),
    )

    return {
      clientId,
      ...watch,
      get,
      put: (key, value) => write({ op: "put", key, value }),
      append: (key, value) => write({ op: "append", key, value }),
      delete: (key) => write({ op: "delete", key }),
      getEntry,
      putIf: (key, value, condition) =>
        narrow(Effect.flatMap(command({ op: "casPut", key, value, when: toCondition(condition) }), casResult)),
      deleteIf: (key, condition) =>
        narrow(Effect.flatMap(command({ op: "casDelete", key, when: toCondition(condition) }), casResult)),
      txn: (request) => Effect.flatMap(command(txnOp(request)), txnResult),
      list,
    }
  })

export class ShardKvClient extends Context.Service<ShardKvClient, KvClientShape>()("@kv/shardkv/ShardKvClient") {
  static layer(options: ShardKvClientOptions): Layer.Layer<ShardKvClient, never, RpcNode> {
    return Layer.effect(
      ShardKvClient,
      Effect.flatMap(
        RpcNode.useSync((rpc) => rpc),
        (rpc) => makeShardKvClient(rpc, options),
      ),
    )
  }
}
