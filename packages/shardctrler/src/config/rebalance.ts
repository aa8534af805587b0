/**
 * Shard placement after a join or leave.
 *
 * The result is balanced (every live group serves floor(n/g) or floor(n/g)+1 shards),
 * minimal (a shard changes group only if its group is gone, it had no group, or its
 * group holds more than its share), and deterministic: it depends only on the previous
 * shards array and the set of live gids, never on the order gids were given in. Every
 * controller replica applies it to the same log, so they must all reach the same answer.
 */
import { type Gid, isGid, noGroup, sortGids } from "./config.ts"

/**
 * Places `shards` (the previous assignment) on the `liveGids`. With no live groups every
 * shard goes to `noGroup`. With more groups than shards some groups get none.
 */
export const rebalance = (shards: readonly Gid[], liveGids: Iterable<Gid>): Gid[] => {
  const gids = sortGids(new Set(liveGids))
  for (const gid of gids) {
    if (!isGid(gid)) throw new RangeError(`rebalance: invalid gid ${gid}`)
  }
  if (gids.length === 0) return shards.map(() => noGroup)

  // Shards each live group keeps for now, ascending; everything else is up for placement.
  const owned = new Map<Gid, number[]>(gids.map((gid) => [gid, []]))
  const unplaced: number[] = []
  shards.forEach((gid, shard) => {
    const list = owned.get(gid)
    if (list === undefined) unplaced.push(shard)
    else list.push(shard)
  })

  // The floor(n/g)+1 shares go to the groups that already hold the most, so the fewest
  // shards have to leave their group; ties go to the lower gid.
  const ranked = [...gids].sort((a, b) => ownedCount(owned, b) - ownedCount(owned, a) || a - b)
  const share = Math.floor(shards.length / gids.length)
  const largerShares = shards.length % gids.length
  const target = new Map<Gid, number>(ranked.map((gid, rank) => [gid, share + (rank < largerShares ? 1 : 0)]))

  for (const gid of ranked) {
    const list = owned.get(gid) ?? []
    const keep = target.get(gid) ?? 0
    if (list.length > keep) unplaced.push(...list.splice(keep))
  }

  unplaced.sort((a, b) => a - b)
  const next = [...shards]
  let cursor = 0
  for (const gid of ranked) {
    const list = owned.get(gid) ?? []
    const want = target.get(gid) ?? 0
    for (let have = list.length; have < want; have++) {
      const shard = unplaced[cursor++]
      if (shard === undefined) throw new Error("rebalance: shares exceed the shard count")
      next[shard] = gid
    }
    for (const shard of list) next[shard] = gid
  }
  if (cursor !== unplaced.length) throw new Error("rebalance: a shard was left unplaced")
  return next
}

const ownedCount = (owned: ReadonlyMap<Gid, readonly number[]>, gid: Gid): number => owned.get(gid)?.length ?? 0
