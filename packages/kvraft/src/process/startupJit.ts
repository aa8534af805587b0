/**
 * The JIT's policy while a server process starts. JavaScriptCore compiles a function at higher
 * tiers once it has run often enough; a restart runs loops that are hot only once (checking and
 * restoring a snapshot of a million keys, decoding and applying the log's tail), and compiling them
 * at the top tier cost the JIT thread 0.25–0.45 s of CPU per replica beside 0.6–1.1 s of the
 * replay itself (measured with three replicas restarting on one 2-core machine, where that CPU is
 * taken from the replays). While any replica of the process is still replaying the log it started
 * with, the tier-up thresholds are raised; then the normal policy returns, and the request path
 * tiers up as before. A replay that has not ended within the cap (a replica stuck restoring) does
 * not keep the process slow: the policy returns then too.
 */
import { Duration, Effect, type Scope } from "effect"

/** How many times more a function runs before it is compiled at each tier, while replicas replay. */
export const STARTUP_JIT_SCALE = 32

/** The longest one start keeps the raised thresholds. */
export const STARTUP_JIT_CAP_MS = 30_000

/** Sets the JIT's tier-up scale (1 is the normal policy). */
export type SetJitPolicy = (scale: number) => void

/** One per process: several services (shard groups) starting in one process share the policy. */
export class StartupJit {
  #holders = 0
  readonly #setPolicy: SetJitPolicy

  constructor(setPolicy: SetJitPolicy) {
    this.#setPolicy = setPolicy
  }

  /** Raises the thresholds until the returned release is called (the second call does nothing). */
  #raise(): () => void {
    if (this.#holders++ === 0) this.#setPolicy(STARTUP_JIT_SCALE)
    let released = false
    return () => {
      if (released) return
      released = true
      if (--this.#holders === 0) this.#setPolicy(1)
    }
  }

  /**
   * Raises the thresholds now, in the caller's scope: they return to normal once `replayed` is
   * done, at most `capMs` after it is started (the effect returned), or when the scope closes.
   */
  raiseUntil(
    capMs = STARTUP_JIT_CAP_MS,
  ): Effect.Effect<(replayed: Effect.Effect<void>) => Effect.Effect<void>, never, Scope.Scope> {
    return Effect.acquireRelease(
      Effect.sync(() => this.#raise()),
      (release) => Effect.sync(release),
    ).pipe(
      Effect.map(
        (release) => (replayed: Effect.Effect<void>) =>
          replayed.pipe(
            Effect.timeoutOption(Duration.millis(capMs)),
            Effect.ensuring(Effect.sync(release)),
            Effect.asVoid,
          ),
      ),
    )
  }
}

/** The process's own. */
export const processStartupJit = new StartupJit((scale) => Bun.unsafe.setJITPolicy(scale))
