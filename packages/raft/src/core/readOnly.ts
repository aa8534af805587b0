/**
 * ReadIndex bookkeeping (§6.4). Reads asked for between two Readies share one round: the leader
 * records its commit index when the round goes out, and the reads are released once a majority has
 * answered a heartbeat carrying that round (or a later one), which proves the node was still
 * leader after the reads were asked for.
 */
import { quorumValue } from "./quorum.ts"
import type { LogIndex, NodeId, ReadState } from "./types.ts"

interface ReadRound {
  readonly id: number
  index: LogIndex
  readonly requestIds: number[]
}

export class ReadOnly {
  /** Rounds sent and not yet confirmed, in id order. */
  private sent: ReadRound[] = []
  /** The round collecting requests until the next flush. */
  private open: ReadRound | undefined = undefined
  /** Requests waiting for the leader to commit an entry of its own term. */
  private deferred: number[] = []
  /** Highest round id each follower has acknowledged this term. */
  private readonly acked = new Map<NodeId, number>()
  private readonly scratch: number[] = []
  /** Never reused within a node's lifetime, so a late ack cannot confirm a newer round. */
  private nextRoundId = 1
  private pendingCount = 0

  pending(): number {
    return this.pendingCount
  }

  defer(requestId: number): void {
    this.deferred.push(requestId)
    this.pendingCount++
  }

  hasDeferred(): boolean {
    return this.deferred.length > 0
  }

  /** Deferred requests, handed back to be served now that the leader has committed in its term. */
  takeDeferred(): number[] {
    const d = this.deferred
    this.deferred = []
    this.pendingCount -= d.length
    return d
  }

  join(requestId: number): void {
    if (this.open === undefined) this.open = { id: this.nextRoundId++, index: 0, requestIds: [] }
    this.open.requestIds.push(requestId)
    this.pendingCount++
  }

  /** Sends the open round: its reads are answered at `commit`, the leader's commit index now. */
  takeOpen(commit: LogIndex): number | undefined {
    const round = this.open
    if (round === undefined) return undefined
    this.open = undefined
    round.index = commit
    this.sent.push(round)
    return round.id
  }

  /** The round the periodic heartbeat carries, so a lost confirmation is retried; 0 if none. */
  latestSentRound(): number {
    return this.sent[this.sent.length - 1]?.id ?? 0
  }

  /**
   * A follower answered a heartbeat of round `context`. Releases every round a majority of
   * `voters` (the leader counting itself) has now acknowledged.
   */
  ack(from: NodeId, context: number, self: NodeId, voters: readonly NodeId[], out: ReadState[]): void {
    if (context <= (this.acked.get(from) ?? 0)) return
    this.acked.set(from, context)
    const values = this.scratch
    values.length = 0
    for (const id of voters) values.push(id === self ? Number.MAX_SAFE_INTEGER : (this.acked.get(id) ?? 0))
    const confirmed = quorumValue(values)
    let released = 0
    for (const round of this.sent) {
      if (round.id > confirmed) break
      for (const requestId of round.requestIds) out.push({ requestId, index: round.index })
      this.pendingCount -= round.requestIds.length
      released++
    }
    if (released > 0) this.sent.splice(0, released)
  }

  /** Leadership lost: pending reads are dropped (the shell fails them when the role changes). */
  reset(): void {
    this.sent = []
    this.open = undefined
    this.deferred = []
    this.acked.clear()
    this.pendingCount = 0
  }
}
