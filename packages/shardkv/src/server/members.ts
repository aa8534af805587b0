import { isSourceOf, normalizeAddress } from "@kv/rpc"
import type { Config } from "@kv/shardctrler"

/** Whether two `host:port` addresses name one endpoint (`localhost` is 127.0.0.1). */
export const sameEndpoint = (a: string, b: string): boolean => a === b || normalizeAddress(a) === normalizeAddress(b)

/** The replicas of the group that `config` gives `shard` to (none when no group has it). */
export const ownerServers = (config: Config, shard: number): readonly string[] =>
  config.groups[String(config.shards[shard] ?? 0)] ?? []

/** Whether the datagram source `from` is a replica of the group that `config` gives `shard` to. */
export const isOwnerReplica = (config: Config, shard: number, from: string): boolean =>
  ownerServers(config, shard).some((server) => isSourceOf(server, from))
