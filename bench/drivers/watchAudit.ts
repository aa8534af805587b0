/**
 * The bookkeeping of a watch cell: every write (its prefix, writer, send and answer times, outcome)
 * and every event each watcher received, so that afterwards the load process can say whether each
 * watcher got every write of its prefix exactly once in order, and how long deliveries took.
 *
 * A write's value starts with its number in the cell (`17:vvvv…`), so an event names its write.
 * Latency is measured from the moment the put's answer reached the writer: the write committed
 * before that, and the writer and the watchers are one process with one clock. The answer can come
 * after the event (both leave the leader at about the same time), so a latency can be negative;
 * from the put's send is an upper bound, and reported beside it.
 */
import type { LatencyRecorder } from "../lib/latency.ts"
import type { Verdict } from "../plan.ts"

/** Problems quoted in a verdict; the rest are counted. */
const QUOTED = 3

const PENDING = 0
const ACKNOWLEDGED = 1
const UNKNOWN = 2

/** A growable array of numbers (Float64), cheap to append hundreds of thousands to. */
class Numbers {
  private values = new Float64Array(256)
  length = 0

  push(n: number): void {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2)
      grown.set(this.values)
      this.values = grown
    }
    this.values[this.length++] = n
  }

  at(i: number): number {
    return this.values[i]!
  }

  set(i: number, n: number): void {
    this.values[i] = n
  }

  /** A sorted copy of the values. */
  sorted(): Float64Array {
    return this.values.slice(0, this.length).sort()
  }
}

interface WatcherLog {
  readonly prefix: number
  /** The writes received (their numbers) and when, in the order they came. */
  readonly writes: Numbers
  readonly receivedAt: Numbers
  lastRevision: number
  /** The last write number received from each writer: a writer's writes must come in its order. */
  readonly lastOfWriter: Map<number, number>
  problems: number
  ended: string | undefined
}

/** The write's number from a watch event's value, or undefined when the value is not one of this cell's. */
export const writeNumberOf = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const colon = value.indexOf(":")
  if (colon <= 0) return undefined
  const n = Number(value.slice(0, colon))
  return Number.isInteger(n) && n >= 0 ? n : undefined
}

/** The value of write `n`: its number, then padding up to `bytes`. */
export const writeValue = (n: number, bytes: number): string => {
  const head = `${n}:`
  return head + "v".repeat(Math.max(0, bytes - head.length))
}

export class WatchAudit {
  private readonly prefixOf = new Numbers()
  private readonly writerOf = new Numbers()
  private readonly sentAt = new Numbers()
  private readonly answeredAt = new Numbers()
  private readonly outcome = new Numbers()
  /** The mod revision every watcher saw for each write (NaN until the first saw it). */
  private readonly revisionOf = new Numbers()
  private readonly acknowledged: number[]
  private readonly logs: WatcherLog[]
  private readonly quoted: string[] = []
  private nextPrefix = 0

  /** `watcherPrefixes[w]`: the index (in `prefixes`) of the prefix watcher `w` watches. */
  constructor(
    readonly prefixes: readonly string[],
    watcherPrefixes: readonly number[],
  ) {
    this.acknowledged = prefixes.map(() => 0)
    this.logs = watcherPrefixes.map((prefix) => ({
      prefix,
      writes: new Numbers(),
      receivedAt: new Numbers(),
      lastRevision: 0,
      lastOfWriter: new Map(),
      problems: 0,
      ended: undefined,
    }))
  }

  /** Watchers spread evenly: watcher w watches prefix w mod the prefix count. */
  static spread(prefixes: readonly string[], watchers: number): WatchAudit {
    return new WatchAudit(
      prefixes,
      Array.from({ length: watchers }, (_, w) => w % prefixes.length),
    )
  }

  get watchers(): number {
    return this.logs.length
  }

  get writes(): number {
    return this.prefixOf.length
  }

  /** The prefix of the next write: round-robin, so every prefix gets its share. */
  choosePrefix(): number {
    const p = this.nextPrefix
    this.nextPrefix = (p + 1) % this.prefixes.length
    return p
  }

  /** A write to `prefix` by `writer` is about to be sent; returns its number. */
  sent(prefix: number, writer: number, at = performance.now()): number {
    const n = this.prefixOf.length
    this.prefixOf.push(prefix)
    this.writerOf.push(writer)
    this.sentAt.push(at)
    this.answeredAt.push(Number.NaN)
    this.outcome.push(PENDING)
    this.revisionOf.push(Number.NaN)
    return n
  }

  /** Write `n` was answered (`ok`), or failed with an error (it may or may not have been applied). */
  answered(n: number, ok: boolean, at = performance.now()): void {
    if (ok) {
      this.answeredAt.set(n, at)
      this.outcome.set(n, ACKNOWLEDGED)
      this.acknowledged[this.prefixOf.at(n)]!++
    } else this.outcome.set(n, UNKNOWN)
  }

  private problem(log: WatcherLog, watcher: number, what: string): void {
    log.problems++
    if (this.quoted.length < QUOTED) this.quoted.push(`watcher ${watcher} (${this.prefixes[log.prefix]}): ${what}`)
  }

  /** Watcher `watcher` received an event. */
  delivered(
    watcher: number,
    key: string,
    value: string | undefined,
    modRevision: number,
    at = performance.now(),
  ): void {
    const log = this.logs[watcher]!
    const prefix = this.prefixes[log.prefix]!
    const n = writeNumberOf(value)
    if (!key.startsWith(prefix) || n === undefined || n >= this.writes || this.prefixOf.at(n) !== log.prefix) {
      this.problem(log, watcher, `an event that is no write of its prefix: ${key} = ${value?.slice(0, 24)}`)
      return
    }
    if (modRevision <= log.lastRevision)
      this.problem(log, watcher, `revision ${modRevision} after ${log.lastRevision} (write ${n})`)
    log.lastRevision = Math.max(log.lastRevision, modRevision)
    const writer = this.writerOf.at(n)
    const last = log.lastOfWriter.get(writer) ?? -1
    if (n === last) this.problem(log, watcher, `write ${n} twice`)
    else if (n < last) this.problem(log, watcher, `write ${n} after write ${last} of the same writer`)
    log.lastOfWriter.set(writer, Math.max(last, n))
    const revision = this.revisionOf.at(n)
    if (Number.isNaN(revision)) this.revisionOf.set(n, modRevision)
    else if (revision !== modRevision)
      this.problem(log, watcher, `write ${n} at revision ${modRevision}, another watcher saw ${revision}`)
    log.writes.push(n)
    log.receivedAt.push(at)
  }

  /** Watcher `watcher`'s watch ended before the cell did (Compacted, refused, an error). */
  ended(watcher: number, why: string): void {
    const log = this.logs[watcher]!
    log.ended = why
    this.problem(log, watcher, `its watch ended: ${why}`)
  }

  /** Writes whose outcome is still open (neither answered nor failed). */
  get pending(): number {
    let count = 0
    for (let n = 0; n < this.writes; n++) if (this.outcome.at(n) === PENDING) count++
    return count
  }

  get unknown(): number {
    let count = 0
    for (let n = 0; n < this.writes; n++) if (this.outcome.at(n) === UNKNOWN) count++
    return count
  }

  /** Has every watcher received as many events as its prefix has acknowledged writes (or given up)? */
  caughtUp(): boolean {
    return this.logs.every((log) => log.ended !== undefined || log.writes.length >= this.acknowledged[log.prefix]!)
  }

  /**
   * Each watcher must have received every acknowledged write of its prefix, nothing else but writes
   * of its prefix whose outcome is unknown, none twice, in increasing revision order (each writer's
   * writes in the order it made them), and exactly what every other watcher of its prefix received.
   */
  verdict(): Verdict {
    const missing = new Map<number, number>()
    let disagreeing = 0
    const firstOfPrefix = new Map<number, number>()
    let events = 0
    for (const [w, log] of this.logs.entries()) {
      events += log.writes.length
      let acknowledged = 0
      for (let i = 0; i < log.writes.length; i++) if (this.outcome.at(log.writes.at(i)) === ACKNOWLEDGED) acknowledged++
      // No write twice (checked as it came), so the acknowledged ones received are distinct.
      const lacking = this.acknowledged[log.prefix]! - acknowledged
      if (lacking > 0) {
        missing.set(w, lacking)
        this.problem(log, w, `${lacking} of ${this.acknowledged[log.prefix]} acknowledged writes never came`)
      }
      const first = firstOfPrefix.get(log.prefix)
      if (first === undefined) firstOfPrefix.set(log.prefix, w)
      else if (!sameWrites(this.logs[first]!.writes, log.writes)) {
        disagreeing++
        this.problem(log, w, `received other writes than watcher ${first} of the same prefix`)
      }
    }
    const failing = this.logs.filter((log) => log.problems > 0).length
    const unknown = this.unknown
    const counted = `${this.watchers.toLocaleString("en-US")} watchers over ${this.prefixes.length} prefixes received ${events.toLocaleString("en-US")} events of ${this.writes.toLocaleString("en-US")} writes${unknown > 0 ? ` (${unknown} of unknown outcome)` : ""}`
    if (failing === 0) return { ok: true, summary: `${counted}, each watcher every write of its prefix once, in order` }
    const more = this.quoted.length < failing ? `; ${failing} watchers in all` : ""
    const lost = missing.size > 0 ? `, ${missing.size} missing events` : ""
    const split = disagreeing > 0 ? `, ${disagreeing} disagreeing with their prefix's other watchers` : ""
    return {
      ok: false,
      summary: `WATCH EVENTS LOST, REPEATED OR OUT OF ORDER: ${counted}${lost}${split}; ${this.quoted.join("; ")}${more}`,
    }
  }

  /**
   * Records into `recorder` one latency per event received in [from, until] (from its write's
   * answer; events of writes without one are left out), and returns the latencies from the writes'
   * sends, and the writes answered and failed in the window.
   */
  measure(
    recorder: LatencyRecorder,
    from: number,
    until: number,
  ): { readonly fromSendP50Ms: number; readonly fromSendP99Ms: number; answered: number; failed: number } {
    const fromSend = new Numbers()
    for (const log of this.logs) {
      for (let i = 0; i < log.writes.length; i++) {
        const at = log.receivedAt.at(i)
        if (at < from || at > until) continue
        const n = log.writes.at(i)
        fromSend.push(at - this.sentAt.at(n))
        const answered = this.answeredAt.at(n)
        if (!Number.isNaN(answered)) recorder.record(at - answered)
      }
    }
    let answered = 0
    let failed = 0
    for (let n = 0; n < this.writes; n++) {
      const at = this.answeredAt.at(n)
      if (!Number.isNaN(at) && at >= from && at <= until) answered++
      // A failed write has no answer time: it counts when it was sent inside the window.
      const sent = this.sentAt.at(n)
      if (this.outcome.at(n) === UNKNOWN && sent >= from && sent <= until) failed++
    }
    const sorted = fromSend.sorted()
    const at = (p: number) =>
      sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0)
    return { fromSendP50Ms: at(0.5), fromSendP99Ms: at(0.99), answered, failed }
  }
}

const sameWrites = (a: Numbers, b: Numbers): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a.at(i) !== b.at(i)) return false
  return true
}
