import type { RsmShape, WrongLeader } from "@kv/kvraft"
import type { RpcNodeShape } from "@kv/rpc"
import { ShardKvReadMethod, type ShardReadReply } from "./protocol.ts"
import type { ShardResult, ShardStateMachine } from "./stateMachine/index.ts"

/** Serves `shardkv.read` (entries with metadata, one shard's listing pages) after ReadIndex, like `shardkv.get`. */
export const handleShardReads = (
  rpc: RpcNodeShape,
  rsm: RsmShape<ShardResult>,
  current: () => ShardStateMachine,
  wrongLeader: (error: WrongLeader) => ShardReadReply,
): void => {
  rpc.handleWith(ShardKvReadMethod, (request, _from, reply: (reply: ShardReadReply) => void) => {
    // Ownership is judged after ReadIndex, on state that includes every earlier reconfiguration.
    rsm.readWith(
      (): ShardReadReply => current().read(request),
      (outcome) => reply(outcome.ok ? outcome.value : wrongLeader(outcome.error)),
    )
  })
}
