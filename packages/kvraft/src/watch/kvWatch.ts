/**
 * Watches on a kvraft group: polls go to the group's leader through a leader caller of their own,
 * whose per-server wait covers the time a leader may hold a poll.
 */
import type { RpcNodeShape } from "@kv/rpc"
import { Effect, Stream } from "effect"
import { type LeaderCallerOptions, makeLeaderCaller } from "../client/leaderCaller.ts"
import type { WatchRange } from "./history.ts"
import { KvWatchPollMethod } from "./protocol.ts"
import {
  defaultWatchWaitMs,
  type PollOutcome,
  type PollStore,
  type WatchError,
  type WatchItem,
  type WatchOptions,
  watchStore,
} from "./watchStream.ts"

/** A key, or `{ prefix }` for every key that starts with it. */
export type WatchTarget = string | { readonly prefix: string }

export const watchRange = (target: WatchTarget): WatchRange =>
  typeof target === "string" ? { key: target, prefix: false } : { key: target.prefix, prefix: true }

/** How long past a poll's wait the client waits for its answer before it asks another replica. */
export const POLL_MARGIN_MS = 1_000

/** Resend interval of a held poll: a lost request or reply costs at most about this much. */
export const POLL_RESEND_MS = 1_000

/** Members are learned on leader changes; a long-lived watch needs no periodic refresh. */
const REFRESH_MEMBERS_MS = 60_000

/** Leader-caller options for polls that a server may hold `waitMs`. */
export const pollCallerOptions = (waitMs: number, base: LeaderCallerOptions = {}): LeaderCallerOptions => ({
  ...base,
  perServerMs: waitMs + POLL_MARGIN_MS,
  attemptTimeoutMs: Math.min(POLL_RESEND_MS, waitMs + POLL_MARGIN_MS),
  deadlineMs: Math.max(base.deadlineMs ?? 0, 2 * (waitMs + POLL_MARGIN_MS)),
  refreshMembersMs: REFRESH_MEMBERS_MS,
})

/** A watch of `target` on the group whose replicas are `servers()` (read when the watch starts). */
export const watchKvGroup = (
  rpc: RpcNodeShape,
  servers: () => readonly string[],
  target: WatchTarget,
  options: WatchOptions = {},
  callerOptions: LeaderCallerOptions = {},
): Stream.Stream<WatchItem, WatchError> =>
  Stream.suspend(() => {
    const caller = makeLeaderCaller(
      rpc,
      servers(),
      pollCallerOptions(options.waitMs ?? defaultWatchWaitMs, callerOptions),
    )
    const range = watchRange(target)
    const poll: PollStore = (request) =>
      caller
        .call(KvWatchPollMethod, () => request, { operation: "watch", key: range.key })
        .pipe(
          Effect.map((reply): PollOutcome => {
            if (reply.ok) {
              return {
                kind: "events",
                events: reply.events,
                revision: reply.revision,
                ...(reply.retryMs === undefined ? {} : { retryMs: reply.retryMs }),
              }
            }
            if (reply.error === "Compacted") {
              return { kind: "compacted", compactRevision: reply.compactRevision, revision: reply.revision }
            }
            return reply.error === "KeyTooLarge" ? { kind: "refused", message: reply.message } : { kind: "retry" }
          }),
          Effect.orElseSucceed((): PollOutcome => ({ kind: "retry" })),
        )
    return watchStore(poll, range, options)
  })
