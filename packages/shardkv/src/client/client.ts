import {
  fromKvErrorReply,
  type KvClientError,
  type KvClientShape,
  type KvOp,
  type LeaderCaller,
  makeLeaderCaller,
  Timeout,
} from "@kv/kvraft"
import { RpcNode, type RpcNodeShape } from "@kv/rpc"
import { type Config, type Gid, makeControllerClient, noGroup, shardOf } from "@kv/shardctrler"
import { Context, Duration, Effect, Layer, Semaphore } from "effect"
import { type ShardCommandReply, type ShardGetReply, ShardKvCommandMethod, ShardKvGetMethod } from "../protocol.ts"

/** Sequence numbers a shard session may run ahead of its oldest unanswered one (the servers allow 1024). */
const SEQ_WINDOW = 1000

export interface ShardKvClientOptions {
  /** Addresses of the shard-controller replicas. */
  readonly controllers: readonly string[]
  /** Overall bound for one operation, retries and reconfigurations included; then `Timeout`. Default 30 s. */
  readonly deadlineMs?: number
  /** How long one group gets (all its replicas) before the configuration is refreshed. Default 2 s. */
  readonly groupAttemptMs?: number
  /** How long one replica gets before the next one of its group is tried. Default 500 ms. */
  readonly perServerMs?: number
  /**
   * Resend interval to the same replica while waiting for its reply. Default 100 ms: a commit or a
   * ReadIndex takes a few network delays, and a lost request should cost little more than that.
   */
  readonly attemptTimeoutMs?: number
}

/** Beyond this many operations in flight, new ones wait (the servers keep 1024 results per client and shard). */
const MAX_OUTSTANDING = 1000

interface ShardSession {
  nextSeq: number
  readonly outstanding: Set<number>
}

interface WrongGroupReply {
  readonly ok: false
  readonly error: "WrongGroup"
}

const isWrongGroup = (reply: ShardCommandReply | ShardGetReply): boolean => !reply.ok && reply.error === "WrongGroup"

/**
 * The sharded-KV client: caches the latest configuration, routes each key to the group serving
 * its shard, follows each group's leader, and refreshes the configuration when a group says
 * WrongGroup or stops answering. Writes are numbered per shard (seq, ackedBelow), because a
 * shard's client sessions travel with the shard. Safe for concurrent use.
 */
export const makeShardKvClient = (rpc: RpcNodeShape, options: ShardKvClientOptions): Effect.Effect<KvClientShape> =>
  Effect.gen(function* (): Effect.fn.Return<KvClientShape> {
    if (options.controllers.length === 0) {
      return yield* Effect.die(new Error("a shardkv client needs at least one controller"))
    }
    const deadlineMs = options.deadlineMs ?? 30_000
    const callerOptions = {
      deadlineMs: options.groupAttemptMs ?? 2_000,
      perServerMs: options.perServerMs ?? 500,
      attemptTimeoutMs: options.attemptTimeoutMs ?? 100,
    }
    const controller = yield* makeControllerClient(rpc, {
      controllers: options.controllers,
      deadlineMs: 2_000,
      perServerMs: 500,
      attemptTimeoutMs: callerOptions.attemptTimeoutMs,
    })
    // 53-bit ids make a collision between clients vanishingly unlikely without coordination.
    const clientId = 1 + Math.floor(Math.random() * (Number.MAX_SAFE_INTEGER - 1))
    let config: Config | undefined
    // Bumped after every refresh, so that operations that failed on the same view share one query.
    let generation = 0
    const refreshing = Semaphore.makeUnsafe(1)
    const groups = new Map<Gid, LeaderCaller>()
    const sessions = new Map<number, ShardSession>()
    const permits = Semaphore.makeUnsafe(MAX_OUTSTANDING)

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

    const backoff = Effect.suspend(() => Effect.sleep(Duration.millis(50 + Math.random() * 50)))

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
        caller = makeLeaderCaller(rpc, servers, callerOptions)
        groups.set(gid, caller)
      }
      return caller
    }

    /**
     * Sends to the group serving `key`'s shard until it answers other than WrongGroup, refreshing
     * the configuration whenever the group refuses or does not answer. Unbounded: callers time it.
     */
    const route = <Res extends ShardCommandReply | ShardGetReply>(
      key: string,
      send: (caller: LeaderCaller) => Effect.Effect<Res, Timeout>,
    ): Effect.Effect<Exclude<Res, WrongGroupReply>> =>
      Effect.gen(function* () {
        while (true) {
          const seen = generation
          const current = yield* currentConfig
          const gid = current.shards[shardOf(key, current.shards.length)] ?? noGroup
          const servers = current.groups[String(gid)] ?? []
          if (gid === noGroup || servers.length === 0) {
            // No group serves the shard yet (nothing joined): wait for a configuration that has one.
            yield* backoff
            yield* refresh(seen)
            continue
          }
          const reply = yield* send(callerFor(gid, servers)).pipe(Effect.option)
          if (reply._tag === "Some" && !isWrongGroup(reply.value)) return reply.value as Exclude<Res, WrongGroupReply>
          yield* refresh(seen)
          // Refused on the latest configuration: the group has not caught up yet, give it a moment.
          if (reply._tag === "Some" && config?.num === current.num) yield* backoff
        }
      })

    const bounded = <A, E>(operation: string, key: string, effect: Effect.Effect<A, E>) =>
      effect.pipe(
        Effect.timeoutOrElse({
          duration: Duration.millis(deadlineMs),
          orElse: () => Effect.fail(new Timeout({ operation, key, afterMs: deadlineMs })),
        }),
      )

    const sessionOf = (shard: number): ShardSession => {
      let session = sessions.get(shard)
      if (session === undefined) {
        session = { nextSeq: 1, outstanding: new Set() }
        sessions.set(shard, session)
      }
      return session
    }

    const ackedBelow = (session: ShardSession): number => {
      let min = session.nextSeq
      for (const seq of session.outstanding) if (seq < min) min = seq
      return min
    }

    const write = (op: KvOp): Effect.Effect<void, KvClientError> =>
      Semaphore.withPermits(
        permits,
        1,
      )(
        bounded(
          op.op,
          op.key,
          Effect.gen(function* () {
            const current = yield* currentConfig
            const session = sessionOf(shardOf(op.key, current.shards.length))
            // The servers refuse seq >= floor + 1024: one slow operation must not let later ones in
            // the same shard push the next seq that far past it. Rare, so a short poll is enough.
            while (session.nextSeq - ackedBelow(session) >= SEQ_WINDOW) yield* Effect.sleep(Duration.millis(2))
            const seq = session.nextSeq++
            session.outstanding.add(seq)
            const reply = yield* route(op.key, (caller) =>
              caller.call(ShardKvCommandMethod, () => ({ clientId, seq, ackedBelow: ackedBelow(session), op }), {
                operation: op.op,
                key: op.key,
              }),
            ).pipe(Effect.ensuring(Effect.sync(() => session.outstanding.delete(seq))))
            if (reply.ok) return
            return yield* fromKvErrorReply(reply)
          }),
        ),
      )

    const get = (key: string): Effect.Effect<string, KvClientError> =>
      bounded(
        "get",
        key,
        Effect.gen(function* () {
          const reply = yield* route(key, (caller) =>
            caller.call(ShardKvGetMethod, () => ({ key }), { operation: "get", key }),
          )
          if (reply.ok) return reply.value
          return yield* fromKvErrorReply(reply)
        }),
      )

    return {
      clientId,
      get,
      put: (key, value) => write({ op: "put", key, value }),
      append: (key, value) => write({ op: "append", key, value }),
      delete: (key) => write({ op: "delete", key }),
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
