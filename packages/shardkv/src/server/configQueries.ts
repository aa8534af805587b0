/**
 * The configuration queries of the groups one process serves, shared. Each group's leader asks the
 * controller for its next configuration every loop interval; with several groups in a process,
 * that was one controller read per group per interval, almost always answered "nothing newer" the
 * same way for all of them. Here, a group's answer serves the others: a configuration found by
 * number is kept (configurations never change), "the latest is N" answers any question past N
 * asked within `freshMs` of the question that got it (a new configuration may be noticed that much
 * later), and questions asked while one is on its way wait for its answer.
 */
import { monotonicMs } from "@kv/kvraft"
import type { Config } from "@kv/shardctrler"
import { Clock, Deferred, Effect, Exit } from "effect"

/** Configurations kept by number: groups of one process walk the same few recent ones. */
const KEPT_CONFIGS = 16

export class ConfigQueries {
  private latest: { readonly config: Config; readonly atMs: number } | undefined
  private readonly byNum = new Map<number, Config>()
  private readonly inFlight = new Map<number, Deferred.Deferred<Config, unknown>>()

  constructor(private readonly freshMs: number) {}

  /**
   * The controller's answer to `query(num)`: configuration `num`, or the latest when there is none
   * yet. `fetch` asks the controller (the caller's own client) when no answer here will do.
   */
  query<E>(num: number, fetch: Effect.Effect<Config, E>): Effect.Effect<Config, E> {
    return Effect.flatMap(Clock.Clock, (clock) => {
      const known = this.byNum.get(num)
      if (known !== undefined) return Effect.succeed(known)
      const latest = this.latest
      if (latest !== undefined && latest.config.num < num && monotonicMs(clock) - latest.atMs < this.freshMs) {
        return Effect.succeed(latest.config)
      }
      const pending = this.inFlight.get(num)
      // Another group's question failing says nothing of ours: it asks for itself then.
      if (pending !== undefined) return Effect.catch(Deferred.await(pending), () => fetch)
      const done = Deferred.makeUnsafe<Config, unknown>()
      // Dated from when it was asked: an answer is no newer than its question.
      const askedAtMs = monotonicMs(clock)
      // Registered and cleared in one uninterruptible stretch: a question left registered, never
      // answered, would hold every later one forever.
      return Effect.uninterruptibleMask((restore) => {
        this.inFlight.set(num, done)
        return restore(fetch).pipe(
          Effect.tap((config) => Effect.sync(() => this.learn(num, config, askedAtMs))),
          Effect.onExit((exit) =>
            Effect.sync(() => {
              this.inFlight.delete(num)
              Deferred.doneUnsafe(done, Exit.isSuccess(exit) ? exit : Exit.fail(undefined))
            }),
          ),
        )
      })
    })
  }

  private learn(asked: number, config: Config, atMs: number): void {
    if (config.num === asked && !this.byNum.has(asked)) {
      if (this.byNum.size >= KEPT_CONFIGS) this.byNum.delete(this.byNum.keys().next().value!)
      this.byNum.set(asked, config)
    }
    // Asked past the latest, the controller answered with it. (Found by number, a configuration
    // says nothing of newer ones: a group walking several must not wait here between them.)
    const latest = this.latest
    if (config.num < asked && (latest === undefined || config.num > latest.config.num || atMs > latest.atMs)) {
      this.latest = { config, atMs }
    }
  }
}
