/**
 * The client side of a watch on one store (the kvraft group, or one shard): a loop of polls that
 * turns into a Stream of events. The position is the revision up to which every event of the range
 * has been delivered; each poll asks for events after it, and the position only moves forward:
 * an event at or below it is never delivered (a reply from a replica that lags after a failover,
 * a late copy), so the stream never goes back in time and never repeats itself. Where the poll
 * goes (which replica, which group) is the caller's business (`PollStore`); any failure there is
 * retried from the same position.
 */
import { Duration, Effect, Option, Random, Schema, Stream } from "effect"
import type { WatchEvent, WatchRange } from "./history.ts"
import type { WatchPollRequest } from "./protocol.ts"

/** Events of the range after the watch's position are no longer kept by the servers: the watch ends. */
export class Compacted extends Schema.TaggedError<Compacted>()("Compacted", {
  /** Events at or below this revision are gone (of this shard, in the sharded service). */
  compactRevision: Schema.Number,
  /** The revision the watcher had reached. */
  revision: Schema.Number,
  /** The sharded service: the shard. */
  shard: Schema.optional(Schema.Number),
}) {
  override get message(): string {
    return (
      `watch compacted${this.shard === undefined ? "" : ` in shard ${this.shard}`}: events after revision ` +
      `${this.revision} are gone up to ${this.compactRevision}; read the current state and watch from there`
    )
  }
}

/** The watch's range cannot be watched (its key or prefix is longer than the cluster allows). */
export class WatchRefused extends Schema.TaggedError<WatchRefused>()("WatchRefused", { message: Schema.String }) {}

export type WatchError = Compacted | WatchRefused

export interface WatchOptions {
  /**
   * The first revision to deliver events of (inclusive, as in etcd): to resume after an event at
   * revision R, pass R + 1. Default: events after the revision the leader had applied when the
   * watch started. 0 and 1 both mean from the first revision.
   */
  readonly fromRevision?: number | undefined
  /**
   * The sharded service: per shard, the first revision to deliver (as `fromRevision`, which
   * applies to the shards not named here). Revisions count per shard, so a sharded watch resumes
   * from each shard's own position (an event's `shard` and `modRevision`).
   */
  readonly fromShardRevisions?: Readonly<Record<number, number>> | undefined
  /** How long a server may hold a poll with nothing to send (default 2 s). */
  readonly waitMs?: number | undefined
  /** Most events per reply (default and cap: the server's, 1,000). */
  readonly maxEvents?: number | undefined
  /** A reply stops adding revisions past this many bytes (default and cap: the server's, 1 MiB). */
  readonly maxBytes?: number | undefined
  /**
   * Also deliver progress notifications in the stream, in order with the events: `{ type:
   * "progress", revision }` says the watch has every event of its range up to `revision` (of
   * `shard`, in the sharded service), after each batch of events and whenever a poll finds nothing
   * new. Revisions only grow (per shard). Default false.
   */
  readonly progress?: boolean | undefined
}

/** Every event of the watch's range up to `revision` (of `shard`) has been delivered before this. */
export interface WatchProgress {
  readonly type: "progress"
  readonly revision: number
  /** The sharded service: the shard. */
  readonly shard?: number
}

export type WatchItem = WatchEvent | WatchProgress

/** Leaves out progress notifications unless `options.progress` asks for them. */
export const withoutProgress = (stream: Stream.Stream<WatchItem, WatchError>): Stream.Stream<WatchEvent, WatchError> =>
  Stream.filter(stream, (item): item is WatchEvent => item.type !== "progress")

export const defaultWatchWaitMs = 2_000

/** What one poll of a store came to, after routing. */
export type PollOutcome =
  | {
      readonly kind: "events"
      readonly events: readonly WatchEvent[]
      readonly revision: number
      readonly retryMs?: number
    }
  | { readonly kind: "compacted"; readonly compactRevision: number; readonly revision: number }
  | { readonly kind: "refused"; readonly message: string }
  /** No answer worth acting on (timeout, no leader, wrong group): poll again from the same position. */
  | { readonly kind: "retry" }

export type PollStore = (request: WatchPollRequest) => Effect.Effect<PollOutcome>

/** Pause after a failed poll before the next, so a store with no leader is not hammered. */
const RETRY_PAUSE_MS = 50

/** A watch of `range` on one store, from a random watcher id. */
export const watchStore = (
  pollStore: PollStore,
  range: WatchRange,
  options: WatchOptions = {},
  shard?: number,
): Stream.Stream<WatchItem, WatchError> =>
  Stream.unwrap(
    Effect.map(Random.nextIntBetween(1, Number.MAX_SAFE_INTEGER), (watcher) => {
      let poll = 0
      const waitMs = options.waitMs ?? defaultWatchWaitMs
      const request = (afterRevision: number | undefined): WatchPollRequest => ({
        watcher,
        poll: ++poll,
        key: range.key,
        prefix: range.prefix,
        ...(afterRevision === undefined ? {} : { afterRevision }),
        ...(options.maxEvents === undefined ? {} : { maxEvents: options.maxEvents }),
        ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
        waitMs,
        ...(shard === undefined ? {} : { shard }),
      })
      /** Polls until an answer comes; the position, when known. */
      type Step = Effect.Effect<readonly [readonly WatchItem[], Option.Option<number | undefined>], WatchError>
      const step = (position: number | undefined): Step =>
        Effect.flatMap(
          Effect.suspend(() => pollStore(request(position))),
          (outcome): Step => {
            switch (outcome.kind) {
              case "retry":
                return Effect.as(Effect.sleep(Duration.millis(RETRY_PAUSE_MS)), [[], Option.some(position)] as const)
              case "refused":
                return Effect.fail(new WatchRefused({ message: outcome.message }))
              case "compacted":
                // Compaction is decided by the log alone: a replica behind the others cannot claim more of it.
                return Effect.fail(
                  new Compacted({
                    compactRevision: outcome.compactRevision,
                    revision: position ?? 0,
                    ...(shard === undefined ? {} : { shard }),
                  }),
                )
              case "events": {
                if (position === undefined) return Effect.succeed([[], Option.some(outcome.revision)] as const)
                const after = outcome.events.filter((e) => e.modRevision > position)
                const fresh = shard === undefined ? after : after.map((e) => ({ ...e, shard }))
                const last = fresh[fresh.length - 1]?.modRevision ?? position
                const next = Math.max(position, last, outcome.revision)
                // The notification follows the batch in the stream: it never runs ahead of the events.
                // An answer with nothing new is one too, so an idle watcher hears, every wait, that
                // it is current, even on a store nobody writes to.
                const items: WatchItem[] =
                  next > position || fresh.length === 0
                    ? [...fresh, { type: "progress", revision: next, ...(shard === undefined ? {} : { shard }) }]
                    : fresh
                const result = [items, Option.some(next)] as const
                return outcome.retryMs === undefined
                  ? Effect.succeed(result)
                  : Effect.as(Effect.sleep(Duration.millis(outcome.retryMs)), result)
              }
            }
          },
        )
      const from = (shard === undefined ? undefined : options.fromShardRevisions?.[shard]) ?? options.fromRevision
      const start = from === undefined ? undefined : Math.max(0, from - 1)
      return Stream.paginate(start, step)
    }),
  )
