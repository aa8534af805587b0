/**
 * Locks and leader elections on kvraft, built from a lease, a create-if-absent and a watch.
 *
 * A lock is the key `locks/<name>` created, if absent, attached to the holder's lease. Its fencing
 * token is the key's createRevision: the group's revision only grows, so every later holder gets a
 * larger token. A lock is only as good as its lease: a holder that stalls past its TTL loses it
 * without knowing, and the next holder's writes carry a larger token. So a resource that a lock
 * guards must remember the largest token it has accepted and refuse anything smaller
 * (docs/client.md "Locks" shows one). An election is the same key with the leader's value in it.
 *
 * Waiting is a watch on the key from the revision it was read at, so a release is seen at once; a
 * watch that ends (the history no longer reaches back) only makes the waiter look again.
 */
import { Duration, Effect, Exit, Fiber, Option, Schema, Scope, Stream } from "effect"
import type { KvEntry } from "../stateMachine/index.ts"
import type { KvGroupClientShape } from "./client.ts"
import type { KvCoordinationError } from "./coordination.ts"

/** Where lock and election keys live. */
export const lockPrefix = "locks/"

export interface LockOptions {
  /** Hold under this lease (kept alive by its owner). Default: a lease of `ttlMs` granted and kept alive here. */
  readonly lease?: number | undefined
  /** TTL of the lease granted here. Default 10,000 ms. */
  readonly ttlMs?: number | undefined
  /** The value stored in the lock key (an election's leader value). Default "". */
  readonly value?: string | undefined
  /** Give up after this long (fails with `LockTimeout`); default: wait for as long as it takes. */
  readonly timeoutMs?: number | undefined
}

export interface Lock {
  readonly name: string
  readonly key: string
  /** Larger than any earlier holder's: resources refuse a smaller one. */
  readonly token: number
  readonly lease: number
  /**
   * Releases the lock (only if this holder still has it) and revokes a lease granted for it. Also
   * done when the scope that took the lock closes.
   */
  readonly unlock: Effect.Effect<void, KvCoordinationError>
  /**
   * Fails once a renewal is refused (`LeaseNotFound`: the lease ended), only for a lease granted
   * here. A holder cut off from the group learns nothing until a renewal gets through: @kv/clerk's
   * lock reports a loss from its own deadline too (the TTL counted from the last renewal sent).
   */
  readonly lost: Effect.Effect<never, KvCoordinationError>
}

/** Who holds a lock or leads an election, if anyone. */
export interface Holder {
  readonly value: string
  readonly token: number
}

const keyOf = (name: string) => `${lockPrefix}${name}`

const holderOf = (entry: KvEntry | undefined): Holder | undefined =>
  entry === undefined ? undefined : { value: entry.value, token: entry.createRevision }

/**
 * Takes the lock `name`, waiting while another holder has it. Released when the scope closes (or
 * by `unlock`); the lease granted for it is kept alive until then.
 */
export const lock = (
  client: KvGroupClientShape,
  name: string,
  options: LockOptions = {},
): Effect.Effect<Lock, KvCoordinationError | LockTimeout, Scope.Scope> =>
  Effect.gen(function* () {
    const key = keyOf(name)
    const ttlMs = options.ttlMs ?? 10_000
    const granted = options.lease === undefined ? (yield* client.leases.grant(ttlMs)).lease : undefined
    const lease = options.lease ?? granted!
    const scope = yield* Effect.scope
    const keeper =
      granted === undefined ? undefined : yield* Effect.forkIn(client.leases.keepAliveForever(granted, ttlMs), scope)
    const acquire = Effect.gen(function* () {
      while (true) {
        const attempt = yield* client.leases.putIf(key, options.value ?? "", { ifAbsent: true }, lease)
        if (attempt.applied) return attempt.revision
        yield* awaitChange(client, key, attempt.entry?.modRevision ?? attempt.revision)
      }
    })
    const token = yield* (
      options.timeoutMs === undefined
        ? acquire
        : acquire.pipe(
            Effect.timeoutOrElse({
              duration: Duration.millis(options.timeoutMs),
              orElse: () => Effect.fail(new LockTimeout({ name, afterMs: options.timeoutMs! })),
            }),
          )
    ).pipe(Effect.onError(() => (granted === undefined ? Effect.void : Effect.ignore(client.leases.revoke(granted)))))
    let released = false
    const unlock = Effect.suspend(() => {
      if (released) return Effect.void
      released = true
      return Effect.gen(function* () {
        if (keeper !== undefined) yield* Fiber.interrupt(keeper)
        yield* client.txn({
          compare: [{ key, target: "createRevision", cmp: "==", value: token }],
          success: [{ op: "delete", key }],
        })
        if (granted !== undefined) yield* Effect.ignore(client.leases.revoke(granted))
      })
    })
    yield* Scope.addFinalizer(scope, Effect.ignore(unlock))
    const lost: Effect.Effect<never, KvCoordinationError> =
      keeper === undefined
        ? Effect.never
        : Effect.flatMap(Fiber.await(keeper), (exit) =>
            Exit.isFailure(exit) ? Effect.failCause(exit.cause) : Effect.never,
          )
    return { name, key, token, lease, unlock, lost }
  })

/** Waits until `key` changes after `revision` (or a while, if the watch cannot say). */
const awaitChange = (client: KvGroupClientShape, key: string, revision: number) =>
  client.watch(key, { fromRevision: revision + 1 }).pipe(
    Stream.take(1),
    Stream.runHead,
    Effect.timeoutOption(Duration.seconds(30)),
    Effect.catch(() => Effect.succeed(Option.none())),
    Effect.asVoid,
  )

/** Who holds the lock `name` (or leads the election `name`) now, if anyone. */
export const holder = (
  client: KvGroupClientShape,
  name: string,
): Effect.Effect<Holder | undefined, KvCoordinationError> => Effect.map(client.getEntry(keyOf(name)), holderOf)

/** Becomes the leader of election `name` with `value`, waiting while another leads: a lock holding the value. */
export const campaign = (
  client: KvGroupClientShape,
  name: string,
  value: string,
  options: Omit<LockOptions, "value"> = {},
): Effect.Effect<Lock, KvCoordinationError | LockTimeout, Scope.Scope> => lock(client, name, { ...options, value })

/** The leader changes its value while it leads; false if it no longer leads (or its lease ended). */
export const proclaim = (
  client: KvGroupClientShape,
  leadership: Lock,
  value: string,
): Effect.Effect<boolean, KvCoordinationError> =>
  Effect.map(
    client.txn({
      compare: [{ key: leadership.key, target: "createRevision", cmp: "==", value: leadership.token }],
      success: [{ op: "put", key: leadership.key, value, lease: leadership.lease }],
    }),
    (result) => result.succeeded,
  ).pipe(Effect.catchTag("LeaseNotFound", () => Effect.succeed(false)))

/** The lock was not taken within its `timeoutMs`; nothing is held. */
export class LockTimeout extends Schema.TaggedError<LockTimeout>()("LockTimeout", {
  name: Schema.String,
  afterMs: Schema.Number,
}) {
  override get message(): string {
    return `lock ${JSON.stringify(this.name)} not taken within ${this.afterMs} ms`
  }
}
