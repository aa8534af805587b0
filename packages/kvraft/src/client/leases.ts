/**
 * Leases for the kvraft client: grant, keep alive (once, or for as long as the caller runs),
 * revoke, attach keys by writing them with a lease, and read a lease's time left.
 *
 * A client counts a lease's TTL from when it sent the grant or keep-alive, never from the answer:
 * the servers count from when they applied it, which is later, so the client's view of a lease
 * running out is never after the servers'.
 */
import { Duration, Effect } from "effect"
import { KvLeaseMethod, type LeaseStatus } from "../protocol.ts"
import type { KvOp, KvReply } from "../stateMachine/index.ts"
import {
  type CasResult,
  casResult,
  type KvCoordinationError,
  type KvWriteCondition,
  toCondition,
} from "./coordination.ts"
import type { KvClientError } from "./errors.ts"
import type { LeaderCaller } from "./leaderCaller.ts"

export interface LeaseGrant {
  readonly lease: number
  readonly ttlMs: number
}

export type { LeaseStatus }

export interface KvLeasesShape {
  /** A new lease of `ttlMs` (1 s to 1 day); keys written with it are deleted when it ends. */
  grant(ttlMs: number): Effect.Effect<LeaseGrant, KvCoordinationError>
  /** Renews the lease to its full TTL; `LeaseNotFound` once it has ended. */
  keepAlive(lease: number): Effect.Effect<LeaseGrant, KvCoordinationError>
  /**
   * Renews the lease every third of its TTL for as long as this runs (interrupt it to stop); fails
   * with `LeaseNotFound` once the lease ended anyway (revoked, or not renewed in time).
   */
  keepAliveForever(lease: number, ttlMs: number): Effect.Effect<never, KvCoordinationError>
  /** Ends the lease now and deletes its keys (one revision); `LeaseNotFound` if it already ended. */
  revoke(lease: number): Effect.Effect<void, KvCoordinationError>
  /** Puts `key` attached to `lease`: deleted when the lease ends (a later put without a lease detaches it). */
  put(key: string, value: string, lease: number): Effect.Effect<void, KvCoordinationError>
  /** `putIf` with the key attached to `lease` when it applies. */
  putIf(
    key: string,
    value: string,
    condition: KvWriteCondition,
    lease: number,
  ): Effect.Effect<CasResult, KvCoordinationError>
  /** The lease's TTL, time left by the leader's reckoning and keys; undefined once it ended. */
  timeToLive(lease: number): Effect.Effect<LeaseStatus | undefined, KvClientError>
  /** Every lease (keys left out). */
  list(): Effect.Effect<readonly LeaseStatus[], KvClientError>
}

type Send = (op: KvOp) => Effect.Effect<KvReply | undefined, KvCoordinationError>

const grantOf = (reply: KvReply | undefined): Effect.Effect<LeaseGrant> =>
  reply?.kind === "lease"
    ? Effect.succeed({ lease: reply.lease, ttlMs: reply.ttlMs })
    : Effect.die(new Error(`a lease command got ${JSON.stringify(reply)}`))

export const makeKvLeases = (send: Send, caller: LeaderCaller): KvLeasesShape => {
  const keepAlive = (lease: number) => Effect.flatMap(send({ op: "leaseKeepAlive", key: "", lease }), grantOf)
  const leases = (lease: number) =>
    caller
      .call(KvLeaseMethod, () => ({ lease }), { operation: "lease", key: String(lease) })
      .pipe(Effect.map((reply) => reply.leases))
  return {
    grant: (ttlMs) => Effect.flatMap(send({ op: "leaseGrant", key: "", ttlMs }), grantOf),
    keepAlive,
    keepAliveForever: (lease, ttlMs) =>
      Effect.forever(
        Effect.andThen(Effect.sleep(Duration.millis(Math.max(100, Math.floor(ttlMs / 3)))), keepAlive(lease)),
      ),
    revoke: (lease) => Effect.asVoid(send({ op: "leaseRevoke", key: "", lease })),
    put: (key, value, lease) => Effect.asVoid(send({ op: "put", key, value, lease })),
    putIf: (key, value, condition, lease) =>
      Effect.flatMap(send({ op: "casPut", key, value, when: toCondition(condition), lease }), casResult),
    timeToLive: (lease) => Effect.map(leases(lease), (found) => found[0]),
    list: () => leases(0),
  }
}
