import type { RpcNodeShape } from "@kv/rpc"
import { Effect } from "effect"
import { ShardPullMethod } from "../protocol.ts"
import type { MigrationTask } from "../stateMachine/index.ts"
import type { ShardPullBuffer } from "./pullBuffer.ts"

export interface PullOptions {
  /** Bound for one chunk request to one replica, resends included. */
  readonly callDeadlineMs?: number
  readonly attemptTimeoutMs?: number
}

/**
 * Fetches the rest of `buffer`'s piece of `task`'s shard from the replicas of its source, one
 * pass over them at most: a replica that has not reached the configuration, does not answer, or
 * no longer has the shard passes the turn to the next. Resolves true once the buffer is complete.
 */
export const pullShard = (
  rpc: RpcNodeShape,
  task: MigrationTask,
  buffer: ShardPullBuffer,
  options: PullOptions = {},
): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    const servers = task.servers
    const callDeadlineMs = options.callDeadlineMs ?? 1_000
    const attemptTimeoutMs = options.attemptTimeoutMs ?? 200
    for (let tried = 0; tried < servers.length && !buffer.complete(); tried++) {
      const server = servers[buffer.nextServer % servers.length]!
      // Keep asking this replica while it hands out chunks; bounded by the shard's size.
      while (!buffer.complete()) {
        const offset = buffer.offset
        const reply = yield* rpc
          .call(
            server,
            ShardPullMethod,
            { configNum: task.handOffConfigNum, toConfigNum: task.configNum, shard: task.shard, offset },
            { attemptTimeoutMs, deadlineMs: callDeadlineMs },
          )
          .pipe(Effect.option)
        if (reply._tag === "None" || !reply.value.ok) break
        if (!buffer.accept(offset, reply.value.total, reply.value.chunk, reply.value.checksum)) break
      }
      if (!buffer.complete()) buffer.nextServer++
    }
    return buffer.complete()
  })
