/**
 * `shardkv.watch.poll` on a shard-group replica: kvraft's watch service (see
 * @kv/kvraft watch/serve.ts for why the leader answers without ReadIndex), one store per shard.
 * A shard's history is part of its store, so it moves with the shard: the new owner answers a
 * watcher from the revision it had reached, and a shard this group does not serve now is
 * `WrongGroup` (a held poll on a shard that leaves is answered so at once).
 */
import {
  answerPoll,
  HeldPolls,
  type HeldPollsOptions,
  monotonicMs,
  nothingToSend,
  type PollAnswer,
  type RsmShape,
  sweepHeldPolls,
} from "@kv/kvraft"
import type { RpcNodeShape } from "@kv/rpc"
import { shardOf } from "@kv/shardctrler"
import { Clock, Effect, type Scope } from "effect"
import type { ShardCommand, ShardResult, ShardStateMachine } from "../stateMachine/index.ts"
import { ShardKvWatchPollMethod, type ShardWatchPollReply } from "./protocol.ts"

export interface ShardWatchServing {
  /** Before applying `command`: what `applied` needs to know of the state it changes. */
  beforeApply(machine: ShardStateMachine, command: ShardCommand): number | undefined
  /** After applying `command` (`before` from beforeApply). */
  applied(machine: ShardStateMachine, command: ShardCommand, before: number | undefined): void
  /** The state was replaced (a snapshot installed). */
  restored(): void
  held(): number
}

export const serveShardWatch = (
  rpc: RpcNodeShape,
  rsm: RsmShape<ShardResult>,
  current: () => ShardStateMachine,
  wrongLeader: () => ShardWatchPollReply,
  options: HeldPollsOptions = {},
): Effect.Effect<ShardWatchServing, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Clock.Clock
    const shardOfCommand = (machine: ShardStateMachine, command: ShardCommand): number | undefined =>
      command.type === "client" ? shardOf(command.command.op.key, machine.nShards) : undefined
    const held = new HeldPolls<ShardWatchPollReply>(
      {
        answer: (request): PollAnswer<ShardWatchPollReply> => {
          const machine = current()
          const shard = request.shard ?? 0
          const store = machine.servingStore(shard)
          if (store === undefined) {
            const message = `group ${machine.gid} does not serve shard ${shard} in configuration ${machine.config.num}`
            return { reply: { ok: false, error: "WrongGroup", message }, empty: false, revision: 0 }
          }
          const answer = answerPoll(store, request)
          return { reply: answer, empty: nothingToSend(answer), revision: store.revision }
        },
        wrongLeader,
        busy: (answer, retryMs) => ({ ok: true, events: [], revision: answer.revision, retryMs }),
      },
      options,
    )
    rpc.handleWith(ShardKvWatchPollMethod, (request, from, reply: (reply: ShardWatchPollReply) => void) => {
      if (rsm.raft.status().role !== "leader") {
        reply(wrongLeader())
        return
      }
      // Held polls are found by shard: a poll names the shard its range lives in.
      const shard = request.shard ?? shardOf(request.key, current().nShards)
      held.poll({ ...request, shard }, from, monotonicMs(clock), reply)
    })
    yield* sweepHeldPolls(held, () => rsm.raft.status().role === "leader", clock)
    return {
      beforeApply: (machine, command) => {
        const shard = shardOfCommand(machine, command)
        return shard === undefined ? undefined : machine.servingStore(shard)?.revision
      },
      applied: (machine, command, before) => {
        if (held.size === 0) return
        const shard = shardOfCommand(machine, command)
        // Configurations and migrations change which shards are served: every held poll looks again.
        if (shard === undefined) return held.changedAll()
        const store = machine.servingStore(shard)
        if (store !== undefined && before !== undefined && store.revision !== before) {
          held.changed(shard, store.history.since(before))
        }
      },
      restored: () => held.changedAll(),
      held: () => held.size,
    }
  })
