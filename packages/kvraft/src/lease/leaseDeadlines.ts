/**
 * One replica's reckoning of when each lease runs out, on "lease time": its monotonic clock (never
 * the wall clock, so a replica whose clock is set or stepped expires nothing early), advanced in
 * steps of at most `maxStepMs`, so a clock that leaps forward can only make leases last longer.
 *
 * Why a lease never expires early, whoever leads: every replica sets a lease's deadline when it
 * applies the entry that grants, renews or checkpoints it, to its own lease time then plus the time
 * left that the entry carries. An entry is applied after it was proposed, so each replica's
 * deadline is at or after the proposer's; the client, which counts its TTL from when it sent the
 * keep-alive, is earlier still. Only the leader acts on a deadline (it proposes the expiry), and a
 * new leader starts from its own deadlines. How late one can be: a replica that restarts replays
 * the log from its snapshot, setting deadlines at replay time; the leader checkpoints every lease's
 * time left at an interval (LeaseOptions.checkpointMs), so a replica that then leads lets a lease
 * outlive its true end by at most that interval plus the time it took to apply the log.
 */
export class LeaseDeadlines {
  #now = 0
  #lastMonotonic: number | undefined
  readonly #deadlines = new Map<number, number>()

  constructor(
    private readonly monotonicMs: () => number,
    private readonly maxStepMs = 5_000,
  ) {}

  /** Lease time now (advanced from the monotonic clock). */
  now(): number {
    const m = this.monotonicMs()
    if (this.#lastMonotonic !== undefined) this.#now += Math.max(0, Math.min(m - this.#lastMonotonic, this.maxStepMs))
    this.#lastMonotonic = m
    return this.#now
  }

  /** The lease runs out `remainingMs` from now. */
  set(id: number, remainingMs: number): void {
    this.#deadlines.set(id, this.now() + remainingMs)
  }

  delete(id: number): void {
    this.#deadlines.delete(id)
  }

  clear(): void {
    this.#deadlines.clear()
  }

  /** Time left of the lease by this replica's reckoning (0 once run out), undefined when unknown. */
  remaining(id: number): number | undefined {
    const deadline = this.#deadlines.get(id)
    return deadline === undefined ? undefined : Math.max(0, deadline - this.now())
  }

  /** Leases whose time is up, by id. */
  expired(): number[] {
    const now = this.now()
    const out: number[] = []
    for (const [id, deadline] of this.#deadlines) if (deadline <= now) out.push(id)
    return out.sort((a, b) => a - b)
  }

  /** Every lease's time left in whole milliseconds (rounded up: never early), for a checkpoint. */
  snapshotRemaining(): [number, number][] {
    const now = this.now()
    return [...this.#deadlines]
      .sort((a, b) => a[0] - b[0])
      .map(([id, deadline]) => [id, Math.max(0, Math.ceil(deadline - now))])
  }
}
