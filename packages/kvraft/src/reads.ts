import type { RpcNodeShape } from "@kv/rpc"
import { KvReadMethod, type ReadReply } from "./protocol.ts"
import type { RsmShape, WrongLeader } from "./rsm/index.ts"
import { answerRead, type KvResult, type KvStateMachine } from "./stateMachine/index.ts"

/** Serves `kv.read` (entries with metadata, listings) after ReadIndex, like `kv.get`. */
export const handleKvReads = (
  rpc: RpcNodeShape,
  rsm: RsmShape<KvResult>,
  current: () => KvStateMachine,
  wrongLeader: (error: WrongLeader) => ReadReply,
): void => {
  rpc.handleWith(KvReadMethod, (request, _from, reply: (reply: ReadReply) => void) => {
    rsm.readWith(
      (): ReadReply => answerRead(current(), request),
      (outcome) => reply(outcome.ok ? outcome.value : wrongLeader(outcome.error)),
    )
  })
}
