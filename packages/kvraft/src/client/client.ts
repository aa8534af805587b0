import { RpcNode, type RpcNodeShape } from "@kv/rpc"
import { Context, Effect, Layer } from "effect"
import { KvCommandMethod, KvGetMethod } from "../protocol.ts"
import type { KvOp } from "../stateMachine/index.ts"
import { fromKvErrorReply, type KvClientError } from "./errors.ts"
import { type LeaderCallerOptions, makeLeaderCaller } from "./leaderCaller.ts"

export interface KvClientOptions extends LeaderCallerOptions {
  /** Addresses of the group's replicas. */
  readonly servers: readonly string[]
}

export interface KvClientShape {
  readonly clientId: number
  get(key: string): Effect.Effect<string, KvClientError>
  put(key: string, value: string): Effect.Effect<void, KvClientError>
  append(key: string, value: string): Effect.Effect<void, KvClientError>
  delete(key: string): Effect.Effect<void, KvClientError>
}

/** Beyond this many operations in flight, new ones wait: the servers keep at most 1024 unacknowledged results per client. */
const MAX_OUTSTANDING = 1000

/**
 * The low-level kvraft client: a session (client id, sequence numbers, what has been received),
 * the cached leader, and retries across servers. Safe for concurrent use: several operations may
 * be outstanding at once, and each is applied exactly once.
 */
export const makeKvClient = (rpc: RpcNodeShape, options: KvClientOptions): Effect.Effect<KvClientShape> =>
  Effect.gen(function* (): Effect.fn.Return<KvClientShape> {
    if (options.servers.length === 0) return yield* Effect.die(new Error("a kv client needs at least one server"))
    const caller = makeLeaderCaller(rpc, options.servers, options)
    // 53-bit ids make a collision between clients vanishingly unlikely without coordination.
    const clientId = 1 + Math.floor(Math.random() * (Number.MAX_SAFE_INTEGER - 1))
    let nextSeq = 1
    const outstanding = new Set<number>()
    /** The lowest sequence number not yet answered (nextSeq when none is outstanding). */
    let lowestOutstanding = 1
    let inFlight = 0
    /** Operations waiting for a slot (see canStart). */
    const queued: (() => void)[] = []

    // A counter, not a Semaphore: below the limit (always, in practice) taking a slot costs nothing.
    // Both bounds: operations in flight, and the distance from the oldest unanswered seq to the next
    // one (the server refuses seq >= its floor + 1024; one slow operation must not let 1,000 later
    // ones push the next seq past that).
    const canStart = () => inFlight < MAX_OUTSTANDING && nextSeq - lowestOutstanding < MAX_OUTSTANDING
    /** Takes a slot and the next sequence number together, so a woken waiter cannot overshoot the window. */
    const take = (): number => {
      inFlight++
      const seq = nextSeq++
      outstanding.add(seq)
      if (outstanding.size === 1) lowestOutstanding = seq
      return seq
    }
    const acquire: Effect.Effect<number> = Effect.suspend(() => {
      if (queued.length === 0 && canStart()) return Effect.succeed(take())
      return Effect.callback<number>((resume) => {
        const wake = () => resume(Effect.succeed(take()))
        queued.push(wake)
        return Effect.sync(() => {
          const at = queued.indexOf(wake)
          if (at >= 0) queued.splice(at, 1)
        })
      })
    })
    const release = (seq: number) => {
      outstanding.delete(seq)
      if (seq === lowestOutstanding) {
        while (lowestOutstanding < nextSeq && !outstanding.has(lowestOutstanding)) lowestOutstanding++
      }
      inFlight--
      while (queued.length > 0 && canStart()) queued.shift()!()
    }

    const write = (op: KvOp): Effect.Effect<void, KvClientError> =>
      Effect.flatMap(acquire, (seq) => {
        return caller
          .call(KvCommandMethod, () => ({ clientId, seq, ackedBelow: lowestOutstanding, op }), {
            operation: op.op,
            key: op.key,
          })
          .pipe(
            Effect.flatMap((reply) => (reply.ok ? Effect.void : fromKvErrorReply(reply))),
            Effect.onExit(() => Effect.sync(() => release(seq))),
          )
      })

    const get = (key: string): Effect.Effect<string, KvClientError> =>
      caller
        .call(KvGetMethod, () => ({ key }), { operation: "get", key })
        .pipe(Effect.flatMap((reply) => (reply.ok ? Effect.succeed(reply.value) : fromKvErrorReply(reply))))

    return {
      clientId,
      get,
      put: (key, value) => write({ op: "put", key, value }),
      append: (key, value) => write({ op: "append", key, value }),
      delete: (key) => write({ op: "delete", key }),
    }
  })

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
