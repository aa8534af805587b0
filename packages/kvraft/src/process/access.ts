import { RaftStatusMethod } from "@kv/raft"
import type { RpcNodeShape } from "@kv/rpc"
import { MemberChangeMethod, MemberListMethod } from "../members/protocol.ts"

/**
 * What client keys may ask of every replicated service besides its own protocol (each server lists
 * those next to its handlers): status and the member list to read-only keys, membership changes to
 * admin keys. Everything else needs the server key (see RpcNodeShape.allow, docs/operations.md).
 */
export const allowReplicaClients = (rpc: RpcNodeShape): void => {
  rpc.allow("read-only", [RaftStatusMethod, MemberListMethod])
  rpc.allow("admin", [MemberChangeMethod])
}
