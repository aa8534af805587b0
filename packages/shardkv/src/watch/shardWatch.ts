/**
 * Watches on the sharded service: one watch per shard the range can live in (the key's shard; a
 * prefix's shard when it holds a hash tag; else every shard), merged as their events come. Events
 * are in revision order within each shard, and carry their shard; there is no order across shards
 * (revisions count per shard). Each shard's watch keeps its own position and follows its shard
 * from group to group: a poll goes to the group the configuration names, and `WrongGroup` or no
 * answer refreshes the configuration and asks again from the same position. The history moves
 * with the shard, so the new owner continues where the old one was.
 */
import {
  defaultWatchWaitMs,
  type LeaderCaller,
  type LeaderCallerOptions,
  makeLeaderCaller,
  type PollOutcome,
  type PollStore,
  pollCallerOptions,
  type WatchError,
  type WatchItem,
  type WatchOptions,
  type WatchTarget,
  watchRange,
  watchStore,
} from "@kv/kvraft"
import type { RpcNodeShape } from "@kv/rpc"
import { type Config, type Gid, hashTagOf, noGroup, shardOf } from "@kv/shardctrler"
import { Effect, Stream } from "effect"
import { groupRpc } from "../protocol.ts"
import { ShardKvWatchPollMethod } from "./protocol.ts"

/** What a watch needs of the client's view of the configurations. */
export interface ShardRouting {
  /** The cached configuration, fetched if none is cached yet. */
  readonly config: Effect.Effect<Config>
  /** Bumped after every refresh: failures on the same view share one refresh. */
  readonly generation: () => number
  /** Fetches the latest configuration unless a refresh happened since `seen`. */
  readonly refresh: (seen: number) => Effect.Effect<void>
  /** A short random pause (a group catching up, no group for a shard yet). */
  readonly backoff: Effect.Effect<void>
}

/** The shards whose events a watch of `target` needs. */
export const watchedShards = (target: WatchTarget, nShards: number): number[] => {
  if (typeof target === "string") return [shardOf(target, nShards)]
  const { prefix } = target
  return hashTagOf(prefix) !== prefix ? [shardOf(prefix, nShards)] : Array.from({ length: nShards }, (_, i) => i)
}

export const watchShards = (
  rpc: RpcNodeShape,
  routing: ShardRouting,
  target: WatchTarget,
  options: WatchOptions = {},
  callerOptions: LeaderCallerOptions = {},
): Stream.Stream<WatchItem, WatchError> =>
  Stream.unwrap(
    Effect.map(routing.config, (first) => {
      const range = watchRange(target)
      const pollOptions = pollCallerOptions(options.waitMs ?? defaultWatchWaitMs, callerOptions)
      /** One caller per group, shared by this watch's shards. */
      const callers = new Map<Gid, LeaderCaller>()
      const callerFor = (gid: Gid, servers: readonly string[]): LeaderCaller => {
        let caller = callers.get(gid)
        if (caller === undefined) {
          caller = makeLeaderCaller(groupRpc(rpc, gid), servers, pollOptions)
          callers.set(gid, caller)
        } else if (servers.some((s) => !caller!.servers.includes(s))) {
          caller.setServers(servers)
        }
        return caller
      }
      const pollShard =
        (shard: number): PollStore =>
        (request) =>
          Effect.gen(function* () {
            const seen = routing.generation()
            const config = yield* routing.config
            const gid = config.shards[shard] ?? noGroup
            const servers = config.groups[String(gid)] ?? []
            if (gid === noGroup || servers.length === 0) {
              yield* routing.backoff
              yield* routing.refresh(seen)
              return { kind: "retry" } as const
            }
            const reply = yield* callerFor(gid, servers)
              .call(ShardKvWatchPollMethod, () => request, { operation: "watch", key: range.key })
              .pipe(Effect.option)
            if (reply._tag === "None" || (!reply.value.ok && reply.value.error === "WrongGroup")) {
              yield* routing.refresh(seen)
              // Refused on the latest configuration: the group has not caught up yet, give it a moment.
              if (reply._tag === "Some") yield* routing.backoff
              return { kind: "retry" } as const
            }
            const answer = reply.value
            if (answer.ok) {
              return {
                kind: "events",
                events: answer.events,
                revision: answer.revision,
                ...(answer.retryMs === undefined ? {} : { retryMs: answer.retryMs }),
              } satisfies PollOutcome
            }
            if (answer.error === "Compacted") {
              return { kind: "compacted", compactRevision: answer.compactRevision, revision: answer.revision } as const
            }
            return answer.error === "KeyTooLarge"
              ? ({ kind: "refused", message: answer.message } as const)
              : ({ kind: "retry" } as const)
          })
      const streams = watchedShards(target, first.shards.length).map((shard) =>
        watchStore(pollShard(shard), range, options, shard),
      )
      return streams.length === 1 ? streams[0]! : Stream.mergeAll(streams, { concurrency: "unbounded" })
    }),
  )
