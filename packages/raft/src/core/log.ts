/**
 * The Raft log as one node holds it: a snapshot boundary, the entries after it (all in memory,
 * looked up by array offset), how far they are durable, committed and applied.
 *
 * Invariants:
 *   snapshotIndex <= applied <= committed <= lastIndex   (applied may trail a pending snapshot)
 *   snapshotIndex <= stableIndex <= lastIndex
 *   entries[k].index === snapshotIndex + 1 + k, and terms never decrease along the log
 */
import { EMPTY_MEMBERSHIP } from "./membership.ts"
import type { Entry, LogIndex, Membership, Snapshot, Term } from "./types.ts"

const EMPTY: readonly Entry[] = []

export interface ConflictHint {
  readonly conflictTerm: Term
  readonly conflictIndex: LogIndex
}

export class RaftLog {
  /** Index and term of the last entry the snapshot covers (0, 0 without one). */
  private snapIndex: LogIndex
  private snapTerm: Term
  private entries: Entry[]
  /** The newest snapshot: the service's own or one installed from a leader; sent to lagging followers. */
  snapshot: Snapshot | undefined
  /** A snapshot received from the leader and not yet durable; the next Ready carries it. */
  pendingSnapshot: Snapshot | undefined = undefined
  /** Entries up to here are durable (a pending snapshot counts as covering its index). */
  stableIndex: LogIndex
  /** Highest index known to be committed. */
  committed: LogIndex
  /** Highest index the service has applied (advanced past). */
  applied: LogIndex
  /** The membership in force at the snapshot index: the snapshot's, else the bootstrap one. */
  private baseConfig: Membership
  /** The configuration entries after the snapshot, ascending (thesis §4.1: the latest one rules). */
  private configs: Entry[]
  /** Bumped whenever the latest configuration may have changed (append, truncation, restore). */
  configVersion = 0

  constructor(
    snapshot: Snapshot | undefined,
    entries: readonly Entry[],
    commit: LogIndex,
    private readonly bootstrapConfig: Membership = EMPTY_MEMBERSHIP,
  ) {
    this.snapIndex = snapshot?.index ?? 0
    this.snapTerm = snapshot?.term ?? 0
    this.snapshot = snapshot
    this.baseConfig = snapshot?.membership ?? bootstrapConfig
    this.configs = entries.filter((e) => e.config !== undefined)
    let expected = this.snapIndex + 1
    let lastTerm = this.snapTerm
    for (const e of entries) {
      if (e.index !== expected) throw new Error(`restored log is not contiguous at index ${expected}`)
      if (e.term < lastTerm) throw new Error(`restored log term decreases at index ${e.index}`)
      expected++
      lastTerm = e.term
    }
    this.entries = entries.slice()
    this.stableIndex = this.lastIndex()
    // A crash between persisting a snapshot and the hard state after it can leave commit behind it.
    this.committed = Math.min(Math.max(commit, this.snapIndex), this.lastIndex())
    this.applied = this.snapIndex
  }

  snapshotIndex(): LogIndex {
    return this.snapIndex
  }

  snapshotTerm(): Term {
    return this.snapTerm
  }

  firstIndex(): LogIndex {
    return this.snapIndex + 1
  }

  lastIndex(): LogIndex {
    return this.snapIndex + this.entries.length
  }

  lastTerm(): Term {
    const last = this.entries[this.entries.length - 1]
    return last === undefined ? this.snapTerm : last.term
  }

  /** Term of the entry at `index`; undefined when compacted away or beyond the end. */
  term(index: LogIndex): Term | undefined {
    if (index === this.snapIndex) return this.snapTerm
    return this.entries[index - this.snapIndex - 1]?.term
  }

  matchTerm(index: LogIndex, term: Term): boolean {
    return this.term(index) === term
  }

  entryAt(index: LogIndex): Entry | undefined {
    if (index <= this.snapIndex) return undefined
    return this.entries[index - this.snapIndex - 1]
  }

  /** §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: LogIndex, lastTerm: Term): boolean {
    return this.compareToOurs(lastIndex, lastTerm) >= 0
  }

  /** A log ending at (lastIndex, lastTerm) is strictly more up to date than ours. */
  isBehind(lastIndex: LogIndex, lastTerm: Term): boolean {
    return this.compareToOurs(lastIndex, lastTerm) > 0
  }

  /** How a log ending at (lastIndex, lastTerm) ranks against ours (§5.4.1): by last term, then length. */
  private compareToOurs(lastIndex: LogIndex, lastTerm: Term): number {
    const myTerm = this.lastTerm()
    return lastTerm !== myTerm ? lastTerm - myTerm : lastIndex - this.lastIndex()
  }

  /** Leader path: appends one new entry at lastIndex + 1. */
  append(entry: Entry): void {
    if (entry.index !== this.lastIndex() + 1)
      throw new Error(`append at ${entry.index}, log ends at ${this.lastIndex()}`)
    this.entries.push(entry)
    if (entry.config !== undefined) this.addConfig(entry)
  }

  /** The latest configuration in the log, committed or not; index 0 when it is the snapshot's or the bootstrap one. */
  latestConfig(): { readonly membership: Membership; readonly index: LogIndex } {
    const last = this.configs[this.configs.length - 1]
    return last?.config === undefined
      ? { membership: this.baseConfig, index: 0 }
      : { membership: last.config, index: last.index }
  }

  /** The configuration in force at `index` (>= the snapshot index). */
  configAt(index: LogIndex): Membership {
    for (let k = this.configs.length - 1; k >= 0; k--) {
      const e = this.configs[k] as Entry
      if (e.index <= index && e.config !== undefined) return e.config
    }
    return this.baseConfig
  }

  /** The configuration before the latest configuration entry, if that entry is in the log. */
  previousConfig(): Membership | undefined {
    const n = this.configs.length
    if (n === 0) return undefined
    return this.configs[n - 2]?.config ?? this.baseConfig
  }

  private addConfig(entry: Entry): void {
    this.configs.push(entry)
    this.configVersion++
  }

  /**
   * Follower path (§5.3): if our log holds prevIndex with prevTerm, make it hold `entries` after it,
   * truncating only from the first entry that conflicts (an old or repeated Append must not cut
   * entries it does not carry). Returns the index of the last entry of the message, or undefined if
   * prevIndex did not match.
   */
  maybeAppend(prevIndex: LogIndex, prevTerm: Term, entries: readonly Entry[]): LogIndex | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined
    const last = this.lastIndex()
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]!
      if (e.index <= last && this.term(e.index) === e.term) continue
      if (e.index <= this.committed) {
        throw new Error(`log: entry ${e.index} conflicts with committed entry (commit ${this.committed})`)
      }
      this.truncateFrom(e.index)
      for (let j = k; j < entries.length; j++) {
        const added = entries[j]!
        this.entries.push(added)
        if (added.config !== undefined) this.addConfig(added)
      }
      break
    }
    return prevIndex + entries.length
  }

  /** The lowest index dropped by a conflict since the last call, if any (see `takeTruncation`). */
  private truncatedFrom: LogIndex | undefined

  /** Where the log was last cut by a conflicting Append (the lowest index since the last call). */
  takeTruncation(): LogIndex | undefined {
    const index = this.truncatedFrom
    this.truncatedFrom = undefined
    return index
  }

  private truncateFrom(index: LogIndex): void {
    if (this.truncatedFrom === undefined || index < this.truncatedFrom) this.truncatedFrom = index
    this.entries.length = index - this.snapIndex - 1
    if (this.stableIndex >= index) this.stableIndex = index - 1
    // A configuration that came with the dropped entries goes with them (thesis §4.1).
    while ((this.configs[this.configs.length - 1]?.index ?? 0) >= index) {
      this.configs.pop()
      this.configVersion++
    }
  }

  commitTo(index: LogIndex): boolean {
    if (index <= this.committed) return false
    if (index > this.lastIndex()) throw new Error(`log: commit ${index} beyond last index ${this.lastIndex()}`)
    this.committed = index
    return true
  }

  /**
   * Fast back-off hint for a rejected Append at prevIndex: our term there and the first index we
   * hold of that term (never at or below commit: those entries match every leader), or our last
   * index + 1 when the log is shorter.
   */
  conflictHint(prevIndex: LogIndex): ConflictHint {
    const last = this.lastIndex()
    if (prevIndex > last) return { conflictTerm: 0, conflictIndex: last + 1 }
    const t = this.term(prevIndex) ?? 0
    let lo = Math.max(this.committed + 1, this.firstIndex())
    let hi = prevIndex
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.term(mid) ?? 0) >= t) hi = mid
      else lo = mid + 1
    }
    return { conflictTerm: t, conflictIndex: lo }
  }

  /**
   * Leader side of the back-off: the last index <= atOrBelow whose term is <= term, with its term
   * (0, 0 if none is held). Terms never decrease along the log, so this is a binary search.
   */
  lastIndexWithTermAtMost(term: Term, atOrBelow: LogIndex): { index: LogIndex; term: Term } {
    let lo = this.snapIndex
    let hi = Math.min(atOrBelow, this.lastIndex())
    if (hi < lo || this.snapTerm > term) return { index: 0, term: 0 }
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if ((this.term(mid) ?? 0) <= term) lo = mid
      else hi = mid - 1
    }
    return { index: lo, term: this.term(lo) ?? 0 }
  }

  /** Entries in [lo, hi), at most `maxBytes` of data but at least one entry. */
  slice(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    const from = lo - this.snapIndex - 1
    const to = Math.min(hi, this.lastIndex() + 1) - this.snapIndex - 1
    if (from < 0) throw new Error(`log: slice from ${lo} below first index ${this.firstIndex()}`)
    if (to <= from) return []
    let bytes = 0
    let end = from
    while (end < to) {
      bytes += this.entries[end]!.data.length
      if (bytes > maxBytes && end > from) break
      end++
    }
    return this.entries.slice(from, end)
  }

  unstableEntries(): readonly Entry[] {
    if (this.stableIndex >= this.lastIndex()) return EMPTY
    return this.entries.slice(this.stableIndex - this.snapIndex)
  }

  hasUnstable(): boolean {
    return this.stableIndex < this.lastIndex()
  }

  /**
   * `entries` (a Ready's) are now durable. If the log changed under them meanwhile, only the part
   * still in the log counts: an entry with the same index and term implies the same prefix.
   */
  stableTo(entries: readonly Entry[]): void {
    for (let k = entries.length - 1; k >= 0; k--) {
      const e = entries[k]!
      if (this.matchTerm(e.index, e.term)) {
        if (e.index > this.stableIndex) this.stableIndex = e.index
        return
      }
    }
  }

  stableSnapTo(index: LogIndex): void {
    if (this.pendingSnapshot?.index === index) this.pendingSnapshot = undefined
  }

  /** Replaces the whole log with a snapshot received from the leader (which is committed). */
  restore(snapshot: Snapshot): void {
    this.snapIndex = snapshot.index
    this.snapTerm = snapshot.term
    this.entries = []
    this.configs = []
    this.baseConfig = snapshot.membership ?? this.bootstrapConfig
    this.configVersion++
    this.snapshot = snapshot
    this.pendingSnapshot = snapshot
    this.stableIndex = snapshot.index
    this.committed = snapshot.index
  }

  /** The service snapshotted its state at `index` (already applied): drop the log up to it. */
  compact(index: LogIndex, data: Uint8Array): void {
    if (index <= this.snapIndex) return
    const term = this.term(index)
    if (term === undefined || index > this.stableIndex) {
      throw new Error(`log: cannot compact at ${index} (log ${this.firstIndex()}..${this.lastIndex()})`)
    }
    const membership = this.configAt(index)
    this.entries = this.entries.slice(index - this.snapIndex)
    this.snapIndex = index
    this.snapTerm = term
    this.baseConfig = membership
    const kept = this.configs.filter((e) => e.index > index)
    // The latest configuration now comes from the snapshot: same members, no entry index.
    if (kept.length !== this.configs.length) this.configVersion++
    this.configs = kept
    // An unknown membership (a joining node's log before its first configuration entry) is left out.
    this.snapshot = membership.members.length === 0 ? { index, term, data } : { index, term, data, membership }
  }

  /**
   * Committed entries after `after`, bounded by `maxBytes` (at least one). They need not be durable
   * here: committed means durable on a majority (this node counts only once its own write is), so
   * the state machine may run ahead of this disk (thesis §10.2.1); a crash loses both alike.
   */
  committedAfter(after: LogIndex, maxBytes: number): readonly Entry[] {
    if (this.pendingSnapshot !== undefined || this.committed <= after) return EMPTY
    return this.slice(after + 1, this.committed + 1, maxBytes)
  }

  hasCommittedAfter(after: LogIndex): boolean {
    return this.pendingSnapshot === undefined && this.committed > after
  }

  appliedTo(index: LogIndex): void {
    if (index > this.committed) throw new Error(`log: applied ${index} beyond commit ${this.committed}`)
    if (index > this.applied) this.applied = index
  }
}
