/**
 * `kv.watch.poll` on a kvraft replica. Only the leader answers: the history any replica holds is
 * a prefix of the one log, so any replica's answer would be correct, but a follower's may lag
 * and the leader's is the freshest; a watcher never goes back whichever replica answered (see
 * watchStream.ts). No ReadIndex is needed for the same reason: every event sent is committed
 * (applied), and a progress notification "nothing up to R" is true of the log whoever says it.
 */
import type { RpcNodeShape } from "@kv/rpc"
import { Clock, Duration, Effect, Latch, type Scope } from "effect"
import { monotonicMs } from "../commandClock.ts"
import type { RsmShape } from "../rsm/index.ts"
import type { KvResult, KvStateMachine } from "../stateMachine/index.ts"
import { answerPoll, nothingToSend } from "./answer.ts"
import { HeldPolls, type HeldPollsOptions, type PollAnswer } from "./heldPolls.ts"
import { KvWatchPollMethod, type WatchPollReply } from "./protocol.ts"

/** How often held polls are checked for their deadline and for this replica still leading. */
export const WATCH_SWEEP_MS = 50

/**
 * For the life of the scope: sweeps `held` every WATCH_SWEEP_MS (answering polls whose wait is
 * over, and every poll once this replica no longer leads); closes it at the end. Shared by the
 * kvraft and shard-group watch services.
 */
export const sweepHeldPolls = <R>(
  held: HeldPolls<R>,
  isLeader: () => boolean,
  clock: Clock.Clock,
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    // With nothing held there is nothing to sweep: an idle replica does not wake 20 times a second.
    const holding = Latch.makeUnsafe(false)
    held.onFirstHeld = () => holding.openUnsafe()
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.gen(function* () {
          if (held.size === 0) {
            holding.closeUnsafe()
            yield* holding.await
          }
          yield* Effect.sleep(Duration.millis(WATCH_SWEEP_MS))
          if (held.size > 0) held.sweep(monotonicMs(clock), isLeader())
        }),
      ),
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => held.close()))
  })

export interface WatchServing {
  /** A command was applied: the store's revision was `before` (call after every applied command). */
  applied(store: KvStateMachine, before: number): void
  /** The store was replaced (a snapshot installed). */
  restored(): void
  /** Polls held now (a gauge). */
  held(): number
}

export const serveKvWatch = (
  rpc: RpcNodeShape,
  rsm: RsmShape<KvResult>,
  current: () => KvStateMachine,
  wrongLeader: () => WatchPollReply,
  options: HeldPollsOptions = {},
): Effect.Effect<WatchServing, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Clock.Clock
    const held = new HeldPolls<WatchPollReply>(
      {
        answer: (request): PollAnswer<WatchPollReply> => {
          const store = current()
          const answer = answerPoll(store, request)
          return { reply: answer, empty: nothingToSend(answer), revision: store.revision }
        },
        wrongLeader,
        busy: (answer, retryMs) => ({ ok: true, events: [], revision: answer.revision, retryMs }),
      },
      options,
    )
    rpc.handleWith(KvWatchPollMethod, (request, from, reply: (reply: WatchPollReply) => void) => {
      if (rsm.raft.status().role !== "leader") reply(wrongLeader())
      else held.poll(request, from, monotonicMs(clock), reply)
    })
    yield* sweepHeldPolls(held, () => rsm.raft.status().role === "leader", clock)
    return {
      applied: (store, before) => {
        if (store.revision !== before) held.changed(0, store.history.since(before))
      },
      restored: () => held.changedAll(),
      held: () => held.size,
    }
  })
