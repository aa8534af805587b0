/** The operations the shard controller's Raft log carries, and what applying one returns. */
import type { Config } from "./config.ts"

export type ConfigOp =
  /** Adds one or more new groups (gid -> server addresses), then rebalances. */
  | { readonly op: "join"; readonly groups: Readonly<Record<string, readonly string[]>> }
  /** Removes groups, then rebalances their shards onto the rest. */
  | { readonly op: "leave"; readonly gids: readonly number[] }
  /** Pins one shard on a group; no rebalancing. */
  | { readonly op: "move"; readonly shard: number; readonly gid: number }
  /**
   * Replaces the server addresses of a group in the configuration (its Raft membership changed);
   * the same shards on the same groups. No new configuration when the list is already this one.
   * For a group that left (still finishing migrations), the list is kept beside the configurations.
   */
  | { readonly op: "servers"; readonly gid: number; readonly servers: readonly string[] }
  /** Reads configuration `num`; -1 or a number past the latest reads the latest. */
  | { readonly op: "query"; readonly num: number }
  /**
   * A replica group's incarnation (the id its Raft log was started with) says it is about to act
   * in configuration `configNum`; `Successor` when another incarnation holds the gid.
   */
  | { readonly op: "register"; readonly gid: number; readonly incarnation: string; readonly configNum: number }
  /** A new, empty incarnation takes over the gid from the one before (see `ConfigStateMachine`). */
  | { readonly op: "succeed"; readonly gid: number; readonly incarnation: string }

export type ConfigErrorKind =
  | "GroupExists"
  | "UnknownGroup"
  | "BadShard"
  | "BadGid"
  | "BadRequest"
  | "Successor"
  | "GidRetired"

export interface ConfigError {
  readonly ok: false
  readonly error: ConfigErrorKind
  readonly message: string
}

/**
 * join/leave/move/servers answer with the configuration they created, query with the one it
 * read. A rejected operation creates no configuration.
 */
export type ConfigResult = { readonly ok: true; readonly config?: Config } | ConfigError

export const configError = (error: ConfigErrorKind, message: string): ConfigError => ({
  ok: false,
  error,
  message,
})
