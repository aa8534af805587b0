/**
 * Locks and elections as the clerk offers them: the kvraft client's `lock` (the key `locks/<name>`
 * created if absent under a lease; its createRevision is the fencing token), held under a lease this
 * client keeps alive itself, so that losing the lease is reported as soon as the client can no
 * longer vouch for it (see leaseKeeper.ts), not only once a renewal is refused.
 */
import {
  type Holder,
  type KvCoordinationError,
  type KvGroupClientShape,
  holder as kvHolder,
  lock as kvLock,
  proclaim as kvProclaim,
  type LockTimeout,
} from "@kv/kvraft"
import { Effect, type Scope } from "effect"
import type { LeaseLost } from "./errors.ts"
import { keepExisting, keepLease } from "./leaseKeeper.ts"

export interface LockOptions {
  /**
   * Hold the lock under this lease, which its owner keeps alive (this client renews it too while
   * it holds the lock, and does not revoke it). Default: a lease of `ttlMs` granted for the lock,
   * kept alive while it is held and revoked by `unlock`.
   */
  readonly lease?: number | undefined
  /** TTL of the lease granted for the lock. Default 10,000 ms. */
  readonly ttlMs?: number | undefined
  /** Give up after this long, failing with `LockTimeout`. Default: wait as long as it takes. */
  readonly timeoutMs?: number | undefined
}

/** A lock held (or an election won) through the Effect API. */
export interface HeldLock {
  readonly name: string
  /** The lock's key, `locks/<name>`. */
  readonly key: string
  /** The fencing token: larger than every earlier holder's. Resources refuse a smaller one. */
  readonly token: number
  readonly lease: number
  /**
   * Releases the lock if this holder still has it, and revokes the lease granted for it. Also done
   * when the scope that took it closes.
   */
  readonly unlock: Effect.Effect<void, KvCoordinationError>
  /**
   * Fails with `LeaseLost` once the lease is lost: from then on another client may hold the lock,
   * and writes with this token may be refused by the resources it guards.
   */
  readonly lost: Effect.Effect<never, LeaseLost>
}

/** Takes lock `name` (with `value` in its key: an election's leader value), waiting while another holds it. */
export const holdLock = (
  client: KvGroupClientShape,
  name: string,
  value: string,
  options: LockOptions = {},
): Effect.Effect<HeldLock, KvCoordinationError | LockTimeout, Scope.Scope> =>
  Effect.gen(function* () {
    const kept =
      options.lease === undefined
        ? yield* keepLease(client.leases, options.ttlMs ?? 10_000)
        : yield* keepExisting(client.leases, options.lease)
    const lock = yield* kvLock(client, name, { lease: kept.id, value, timeoutMs: options.timeoutMs })
    const revokeOwn = options.lease === undefined ? kept.revoke : Effect.void
    return {
      name,
      key: lock.key,
      token: lock.token,
      lease: kept.id,
      unlock: Effect.andThen(lock.unlock, revokeOwn),
      lost: kept.lost,
    }
  })

/** Who holds lock `name` (or leads election `name`) now, if anyone: its value and token. */
export const holderOf = (
  client: KvGroupClientShape,
  name: string,
): Effect.Effect<Holder | undefined, KvCoordinationError> => kvHolder(client, name)

/** The leader sets its value while it leads; false if it no longer does. */
export const proclaimAs = (
  client: KvGroupClientShape,
  leadership: HeldLock,
  value: string,
): Effect.Effect<boolean, KvCoordinationError> =>
  kvProclaim(
    client,
    {
      name: leadership.name,
      key: leadership.key,
      token: leadership.token,
      lease: leadership.lease,
      unlock: leadership.unlock,
      lost: Effect.never,
    },
    value,
  )
