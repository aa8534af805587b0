/**
 * A lease kept alive by this client for as long as a scope is open, and revoked when it closes.
 *
 * The client counts a lease's TTL from when it sent the grant or renewal that set it (the servers
 * count from when they applied it, later), so its deadline is never after theirs. It renews every
 * third of the TTL; a renewal that does not get through is retried until that deadline, and then
 * the lease is reported lost (`unrenewed`): the servers may end it any moment after. A renewal
 * refused with `LeaseNotFound` reports it lost at once (`ended`).
 */
import type { KvCoordinationError, KvLeasesShape } from "@kv/kvraft"
import { Clock, Deferred, Duration, Effect, Fiber, Option, type Scope } from "effect"
import { LeaseLost } from "./errors.ts"

/** Most time between two tries of a renewal that did not get through. */
const RETRY_PAUSE_MS = 200

export interface KeptLease {
  readonly id: number
  readonly ttlMs: number
  /** Fails with `LeaseLost` once the lease is lost; never succeeds. */
  readonly lost: Effect.Effect<never, LeaseLost>
  /** Whether it has been lost. */
  readonly isLost: Effect.Effect<boolean>
  /** Stops renewing it and revokes it (deleting its keys); nothing if it had already ended. */
  readonly revoke: Effect.Effect<void, KvCoordinationError>
  /** Stops renewing it, and leaves it to run out its TTL (not revoked when the scope closes). */
  readonly release: Effect.Effect<void>
}

type Renewal = { readonly kind: "renewed"; readonly ttlMs: number } | { readonly kind: "ended" | "retry" }

const monotonicNow = Clock.clockWith((clock) => Effect.succeed(Number(clock.monotonicTimeNanosUnsafe()) / 1_000_000))

/** Keeps `lease` alive from `expiresAt` (its deadline by this client's clock) until the scope closes or it is lost. */
const renewForever = (
  leases: KvLeasesShape,
  lease: number,
  ttlMs: number,
  firstExpiresAt: number,
): Effect.Effect<never, LeaseLost> =>
  Effect.gen(function* () {
    let expiresAt = firstExpiresAt
    const period = Duration.millis(Math.max(100, Math.floor(ttlMs / 3)))
    while (true) {
      yield* Effect.sleep(period)
      while (true) {
        const sent = yield* monotonicNow
        const left = expiresAt - sent
        if (left <= 0) return yield* new LeaseLost({ lease, reason: "unrenewed" })
        const outcome = yield* leases.keepAlive(lease).pipe(
          Effect.map((renewed): Renewal => ({ kind: "renewed", ttlMs: renewed.ttlMs })),
          Effect.timeoutOption(Duration.millis(left)),
          Effect.map(Option.getOrElse((): Renewal => ({ kind: "retry" }))),
          Effect.catchTag("LeaseNotFound", () => Effect.succeed<Renewal>({ kind: "ended" })),
          Effect.catch(() => Effect.succeed<Renewal>({ kind: "retry" })),
        )
        if (outcome.kind === "ended") return yield* new LeaseLost({ lease, reason: "ended" })
        if (outcome.kind === "renewed") {
          expiresAt = sent + outcome.ttlMs
          break
        }
        yield* Effect.sleep(Duration.millis(Math.min(RETRY_PAUSE_MS, Math.max(0, expiresAt - (yield* monotonicNow)))))
      }
    }
  })

/**
 * Grants a lease of `ttlMs` and keeps it alive until the scope closes, then revokes it (which
 * deletes its keys), unless it was released.
 */
export const keepLease = (
  leases: KvLeasesShape,
  ttlMs: number,
): Effect.Effect<KeptLease, KvCoordinationError, Scope.Scope> =>
  Effect.gen(function* () {
    const sent = yield* monotonicNow
    let released = false
    const granted = yield* Effect.acquireRelease(leases.grant(ttlMs), (g) =>
      released ? Effect.void : Effect.ignore(leases.revoke(g.lease)),
    )
    const kept = yield* keepGranted(leases, granted.lease, granted.ttlMs, sent + granted.ttlMs)
    return {
      ...kept,
      release: Effect.andThen(
        Effect.sync(() => {
          released = true
        }),
        kept.release,
      ),
    }
  })

/** Keeps an existing lease alive until the scope closes (never revoked here); its deadline starts from a renewal sent now. */
export const keepExisting = (
  leases: KvLeasesShape,
  lease: number,
): Effect.Effect<KeptLease, KvCoordinationError, Scope.Scope> =>
  Effect.gen(function* () {
    const sent = yield* monotonicNow
    const renewed = yield* leases.keepAlive(lease)
    return yield* keepGranted(leases, lease, renewed.ttlMs, sent + renewed.ttlMs)
  })

const keepGranted = (leases: KvLeasesShape, id: number, ttlMs: number, expiresAt: number) =>
  Effect.gen(function* () {
    const lost = yield* Deferred.make<never, LeaseLost>()
    const keeper = yield* Effect.forkScoped(
      Effect.exit(renewForever(leases, id, ttlMs, expiresAt)).pipe(Effect.flatMap((exit) => Deferred.done(lost, exit))),
    )
    const kept: KeptLease = {
      id,
      ttlMs,
      lost: Deferred.await(lost),
      isLost: Deferred.isDone(lost),
      revoke: Effect.andThen(
        Fiber.interrupt(keeper),
        leases.revoke(id).pipe(Effect.catchTag("LeaseNotFound", () => Effect.void)),
      ),
      release: Fiber.interrupt(keeper).pipe(Effect.asVoid),
    }
    return kept
  })
