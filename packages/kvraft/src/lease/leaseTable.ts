/**
 * Leases as the replicated state holds them: each lease's TTL, the keys attached to it, how often
 * it was renewed, and the remaining time its last checkpoint carried. Changed only by applying log
 * entries, so every replica holds the same table. Time itself is not here: when a lease runs out
 * is each replica's own reckoning (leaseDeadlines.ts), from the moments it applied these entries.
 */

/** Longest TTL a lease may ask for: a day. */
export const maxLeaseTtlMs = 24 * 60 * 60 * 1000
/** Shortest TTL: below a few election timeouts a lease could lapse during an ordinary failover. */
export const minLeaseTtlMs = 1000

export interface LeaseInfo {
  readonly id: number
  readonly ttlMs: number
  /** Keep-alives applied since the grant; an expiry decided before the latest one is void. */
  readonly renewals: number
  /** Time left as of the entry that last set it (grant, keep-alive: the TTL; checkpoint: what the leader counted). */
  readonly remainingMs: number
  readonly keys: readonly string[]
}

interface Lease {
  readonly id: number
  readonly ttlMs: number
  renewals: number
  remainingMs: number
  readonly keys: Set<string>
}

/** Snapshot form: `[nextId, [id, ttlMs, renewals, remainingMs, [keys...]], ...]`. */
export type LeaseTableSnapshot = readonly [number, ...(readonly [number, number, number, number, readonly string[]])[]]

export class LeaseTable {
  readonly #leases = new Map<number, Lease>()
  readonly #keyLease = new Map<string, number>()
  #nextId = 1

  get size(): number {
    return this.#leases.size
  }

  /** A new lease; ids are never reused. */
  grant(ttlMs: number): LeaseInfo {
    const lease: Lease = { id: this.#nextId++, ttlMs, renewals: 0, remainingMs: ttlMs, keys: new Set() }
    this.#leases.set(lease.id, lease)
    return info(lease)
  }

  /** Renews the lease to its full TTL; undefined when it does not exist (revoked, expired, never granted). */
  keepAlive(id: number): LeaseInfo | undefined {
    const lease = this.#leases.get(id)
    if (lease === undefined) return undefined
    lease.renewals++
    lease.remainingMs = lease.ttlMs
    return info(lease)
  }

  /** Ends the lease; the keys that were attached to it (to delete), or undefined when it does not exist. */
  revoke(id: number): readonly string[] | undefined {
    const lease = this.#leases.get(id)
    if (lease === undefined) return undefined
    this.#leases.delete(id)
    for (const key of lease.keys) this.#keyLease.delete(key)
    return [...lease.keys].sort()
  }

  /**
   * Ends the lease if it was not renewed since the leader decided it ran out (`renewals` is what the
   * leader saw then): a keep-alive that was committed in between wins.
   */
  expire(id: number, renewals: number): readonly string[] | undefined {
    const lease = this.#leases.get(id)
    if (lease === undefined || lease.renewals !== renewals) return undefined
    return this.revoke(id)
  }

  /**
   * Records the leader's count of time left for each lease it names, as of `renewals`; a lease
   * renewed since (its keep-alive was proposed before the checkpoint, applied after the count) or
   * unknown is skipped. The ids whose time was set.
   */
  checkpoint(remaining: readonly (readonly [number, number, number])[]): number[] {
    const set: number[] = []
    for (const [id, remainingMs, renewals] of remaining) {
      const lease = this.#leases.get(id)
      if (lease === undefined || lease.renewals !== renewals) continue
      lease.remainingMs = Math.max(0, Math.min(remainingMs, lease.ttlMs))
      set.push(id)
    }
    return set
  }

  has(id: number): boolean {
    return this.#leases.has(id)
  }

  get(id: number): LeaseInfo | undefined {
    const lease = this.#leases.get(id)
    return lease === undefined ? undefined : info(lease)
  }

  /** Every lease, by id. */
  all(): LeaseInfo[] {
    return [...this.#leases.values()].sort((a, b) => a.id - b.id).map(info)
  }

  /** The lease `key` is attached to, if any. */
  leaseOf(key: string): number | undefined {
    return this.#keyLease.get(key)
  }

  /** Attaches `key` to lease `id` (which must exist), detaching it from any other lease. */
  attach(key: string, id: number): void {
    this.detach(key)
    const lease = this.#leases.get(id)
    if (lease === undefined) throw new Error(`LeaseTable.attach: no lease ${id}`)
    lease.keys.add(key)
    this.#keyLease.set(key, id)
  }

  /** Detaches `key` from its lease (a write without a lease, or a delete). */
  detach(key: string): void {
    const id = this.#keyLease.get(key)
    if (id === undefined) return
    this.#keyLease.delete(key)
    this.#leases.get(id)?.keys.delete(key)
  }

  toSnapshot(): LeaseTableSnapshot {
    const rows = [...this.#leases.values()]
      .sort((a, b) => a.id - b.id)
      .map((l) => [l.id, l.ttlMs, l.renewals, l.remainingMs, [...l.keys].sort()] as const)
    return [this.#nextId, ...rows]
  }

  /** Rebuilds a table from `toSnapshot()`; `hasKey` says whether the store holds a key. Throws if corrupt. */
  static fromSnapshot(raw: unknown, hasKey: (key: string) => boolean): LeaseTable {
    const table = new LeaseTable()
    if (!Array.isArray(raw) || raw.length < 1 || !isCount(raw[0]) || raw[0] < 1) {
      throw new Error("lease table: expected [nextId, leases...]")
    }
    table.#nextId = raw[0]
    for (const row of raw.slice(1) as unknown[]) {
      if (!Array.isArray(row) || row.length !== 5) throw new Error("lease table: a lease is not 5 fields")
      const [id, ttlMs, renewals, remainingMs, keys] = row as unknown[]
      if (
        !isCount(id) ||
        id < 1 ||
        id >= table.#nextId ||
        table.#leases.has(id) ||
        !isCount(ttlMs) ||
        !isCount(renewals) ||
        !isCount(remainingMs) ||
        !Array.isArray(keys)
      ) {
        throw new Error(`lease table: lease ${JSON.stringify(row).slice(0, 200)} is malformed`)
      }
      table.#leases.set(id, { id, ttlMs, renewals, remainingMs, keys: new Set() })
      for (const key of keys as unknown[]) {
        if (typeof key !== "string" || !hasKey(key) || table.#keyLease.has(key)) {
          throw new Error(`lease table: lease ${id} names key ${JSON.stringify(key)} twice or not in the store`)
        }
        table.attach(key, id)
      }
    }
    return table
  }
}

const info = (lease: Lease): LeaseInfo => ({
  id: lease.id,
  ttlMs: lease.ttlMs,
  renewals: lease.renewals,
  remainingMs: lease.remainingMs,
  keys: [...lease.keys].sort(),
})

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0
