import { type LeaderCallerOptions, makeLeaderCaller, randomClientId, type Timeout } from "@kv/kvraft"
import { type PermissionDenied, RpcNode, type RpcNodeShape } from "@kv/rpc"
import { Context, Effect, Layer, Random, Semaphore } from "effect"
import type { Config } from "../config/index.ts"
import { ControllerError } from "./errors.ts"
import {
  type AdminOpSchema,
  ControllerAdminMethod,
  ControllerGroupServersMethod,
  ControllerIncarnationMethod,
  ControllerQueryMethod,
} from "./protocol.ts"

export interface ControllerClientOptions extends LeaderCallerOptions {
  /** Addresses of the controller replicas. */
  readonly controllers: readonly string[]
}

export interface ControllerClientShape {
  join(
    groups: Readonly<Record<string, readonly string[]>>,
  ): Effect.Effect<void, ControllerError | Timeout | PermissionDenied>
  leave(gids: readonly number[]): Effect.Effect<void, ControllerError | Timeout | PermissionDenied>
  move(shard: number, gid: number): Effect.Effect<void, ControllerError | Timeout | PermissionDenied>
  /**
   * A new configuration with the group's server list replaced and every shard where it was (its
   * members changed); none when the list is already this one. Fails with code `UnknownGroup` when
   * the gid was never joined, `GidRetired` when retired. For a group that left (still finishing
   * its migrations) the list is kept beside the configurations (see `serversOf`).
   */
  setServers(gid: number, servers: readonly string[]): Effect.Effect<void, ControllerError | Timeout | PermissionDenied>
  /** Configuration `num`; -1 (or past the latest) for the latest. */
  query(num?: number): Effect.Effect<Config, ControllerError | Timeout | PermissionDenied>
  /**
   * The gid's servers: the latest configuration's list; for a group that left (and may still be
   * finishing migrations), the list it last sent; empty for a gid never joined.
   */
  serversOf(gid: number): Effect.Effect<readonly string[], ControllerError | Timeout | PermissionDenied>
  /**
   * A replica group's incarnation says it is about to act in configuration `configNum` (fails
   * with code `Successor` when another incarnation holds the gid, `GidRetired` when retired).
   */
  register(
    gid: number,
    incarnation: string,
    configNum: number,
  ): Effect.Effect<void, ControllerError | Timeout | PermissionDenied>
  /** A new, empty incarnation takes over its gid (fails with code `GidRetired` if it may not). */
  succeed(gid: number, incarnation: string): Effect.Effect<void, ControllerError | Timeout | PermissionDenied>
  /**
   * The gid's current incarnation (undefined when none) and the configuration it carries on from:
   * after `succeed`, the last one its predecessor acted in.
   */
  incarnation(
    gid: number,
  ): Effect.Effect<
    { readonly incarnation: string; readonly startAfter: number } | undefined,
    ControllerError | Timeout | PermissionDenied
  >
}

/**
 * The admin client of the shard controller. Admin operations are exactly-once (a session like the
 * KV clerk's) and issued one at a time.
 */
export const makeControllerClient = (
  rpc: RpcNodeShape,
  options: ControllerClientOptions,
): Effect.Effect<ControllerClientShape> =>
  Effect.gen(function* () {
    const caller = makeLeaderCaller(rpc, options.controllers, options)
    // 53-bit ids make a collision between clients vanishingly unlikely without coordination.
    const random = yield* Random.Random
    const newClientId = () => randomClientId(random)
    let clientId = newClientId()
    let nextSeq = 1
    // Until a reply arrives the controller may never have seen this id: claim no results then.
    let confirmed = false
    const one = Semaphore.makeUnsafe(1)

    /**
     * One admin operation. A session the controller expired is replaced under a new id: the
     * operation was not applied (`SessionExpired`), so it is sent again there; after
     * `OutcomeUnknown` it is not, and the caller gets the error.
     */
    const send = (
      op: typeof AdminOpSchema.Type,
      key: string,
      renewals: number,
    ): Effect.Effect<void, ControllerError | Timeout | PermissionDenied> =>
      Effect.suspend(() => {
        const id = clientId
        const seq = nextSeq++
        // Sequential: every earlier seq has been answered, so the server may forget them.
        const ackedBelow = confirmed ? seq : 1
        return caller.call(ControllerAdminMethod, () => ({ clientId: id, seq, ackedBelow, op }), {
          operation: op.op,
          key,
        })
      }).pipe(
        Effect.flatMap((reply): Effect.Effect<void, ControllerError | Timeout | PermissionDenied> => {
          if (reply.ok) {
            confirmed = true
            return Effect.void
          }
          if (reply.error === "SessionExpired" || reply.error === "OutcomeUnknown") {
            clientId = newClientId()
            nextSeq = 1
            confirmed = false
            if (reply.error === "SessionExpired" && renewals < 3) return send(op, key, renewals + 1)
          } else {
            confirmed = true
          }
          return Effect.fail(new ControllerError({ code: reply.error, message: reply.message }))
        }),
      )

    const admin = (op: typeof AdminOpSchema.Type, key: string) => Semaphore.withPermits(one, 1)(send(op, key, 0))

    return {
      join: (groups) =>
        admin({ op: "join", groups: groups as Record<string, string[]> }, Object.keys(groups).join(",")),
      leave: (gids) => admin({ op: "leave", gids: [...gids] }, gids.join(",")),
      move: (shard, gid) => admin({ op: "move", shard, gid }, `${shard}->${gid}`),
      setServers: (gid, servers) => admin({ op: "servers", gid, servers: [...servers] }, String(gid)),
      register: (gid, incarnation, configNum) =>
        admin({ op: "register", gid, incarnation, configNum }, `${gid}@${configNum}`),
      succeed: (gid, incarnation) => admin({ op: "succeed", gid, incarnation }, String(gid)),
      incarnation: (gid) =>
        caller
          .call(ControllerIncarnationMethod, () => ({ gid }), { operation: "incarnation", key: String(gid) })
          .pipe(
            Effect.flatMap((reply) => {
              if (!reply.ok) return Effect.fail(new ControllerError({ code: reply.error, message: reply.message }))
              return Effect.succeed(
                reply.incarnation === "" ? undefined : { incarnation: reply.incarnation, startAfter: reply.startAfter },
              )
            }),
          ),
      serversOf: (gid) =>
        caller
          .call(ControllerGroupServersMethod, () => ({ gid }), { operation: "groupServers", key: String(gid) })
          .pipe(
            Effect.flatMap(
              (reply): Effect.Effect<readonly string[], ControllerError> =>
                reply.ok
                  ? Effect.succeed(reply.servers)
                  : Effect.fail(new ControllerError({ code: reply.error, message: reply.message })),
            ),
          ),
      query: (num = -1) =>
        caller
          .call(ControllerQueryMethod, () => ({ num }), { operation: "query", key: String(num) })
          .pipe(
            Effect.flatMap(
              (reply): Effect.Effect<Config, ControllerError> =>
                reply.ok
                  ? Effect.succeed(reply.config)
                  : Effect.fail(new ControllerError({ code: reply.error, message: reply.message })),
            ),
          ),
    }
  })

export class ControllerClient extends Context.Service<ControllerClient, ControllerClientShape>()(
  "@kv/shardctrler/ControllerClient",
) {
  static layer(options: ControllerClientOptions): Layer.Layer<ControllerClient, never, RpcNode> {
    return Layer.effect(
      ControllerClient,
      Effect.flatMap(
        RpcNode.useSync((rpc) => rpc),
        (rpc) => makeControllerClient(rpc, options),
      ),
    )
  }
}
