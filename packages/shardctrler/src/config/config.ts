/**
 * A shard-controller configuration: which replica group serves each shard, and the
 * servers of every group. Configurations are numbered; number 0 has no groups.
 */

/** A replica group id. Real groups are > 0; 0 marks a shard that no group serves. */
export type Gid = number

/** The gid of shards that no group serves (configuration 0, or after every group left). */
export const noGroup: Gid = 0

/** The lab's shard count. */
export const defaultShardCount = 10

export interface Config {
  /** Position in the history: configuration n is the result of the n-th join/leave/move. */
  readonly num: number
  /** shards[s] is the group serving shard s; length is the controller's shard count. */
  readonly shards: readonly Gid[]
  /** gid (decimal, as an object key) -> that group's server addresses ("host:port"). */
  readonly groups: Readonly<Record<string, readonly string[]>>
}

/**
 * Builds a configuration from copies of its inputs. Group keys are inserted in ascending
 * numeric order so that every replica builds byte-identical encodings: gids >= 2^32 - 1
 * are not array indices, and for those JavaScript keeps insertion order.
 *
 * Configurations are shared, not copied, by `query` and the history; the readonly types
 * are the guard. (Object.freeze would say it at run time too, but freezing arrays costs
 * JavaScriptCore about ten times the rest of an apply.)
 */
export const makeConfig = (
  num: number,
  shards: readonly Gid[],
  groups: ReadonlyMap<Gid, readonly string[]>,
): Config => {
  const record: Record<string, readonly string[]> = {}
  for (const gid of sortGids(groups.keys())) {
    const servers = groups.get(gid) ?? []
    record[String(gid)] = [...servers]
  }
  return { num, shards: [...shards], groups: record }
}

/** Configuration 0: every shard on no group, no groups. */
export const initialConfig = (nShards: number = defaultShardCount): Config => {
  if (!Number.isSafeInteger(nShards) || nShards < 1) {
    throw new RangeError(`shard count must be a positive integer, got ${nShards}`)
  }
  return makeConfig(0, new Array<Gid>(nShards).fill(noGroup), new Map())
}

/** The gids of a configuration, ascending. */
export const configGids = (config: Config): Gid[] => sortGids(Object.keys(config.groups).map(Number))

/** The configuration's groups as a map keyed by numeric gid. */
export const configGroups = (config: Config): Map<Gid, readonly string[]> => {
  const groups = new Map<Gid, readonly string[]>()
  for (const gid of configGids(config)) {
    groups.set(gid, config.groups[String(gid)] ?? [])
  }
  return groups
}

/** Number of shards each gid of the configuration serves (0 for groups with none). */
export const shardCounts = (config: Config): Map<Gid, number> => {
  const counts = new Map<Gid, number>()
  for (const gid of configGids(config)) counts.set(gid, 0)
  for (const gid of config.shards) {
    const count = counts.get(gid)
    if (count !== undefined) counts.set(gid, count + 1)
  }
  return counts
}

/** A gid as it appears in the wire format and in `Config.groups`: a positive safe integer. */
export const isGid = (value: unknown): value is Gid =>
  typeof value === "number" && Number.isSafeInteger(value) && value > 0

export const sortGids = (gids: Iterable<Gid>): Gid[] => [...gids].sort((a, b) => a - b)
