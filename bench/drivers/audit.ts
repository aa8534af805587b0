/**
 * What the drivers report while a cell runs, so the load process can check the store afterwards:
 * every conditional increment whose outcome the client knows (applied) or does not know (an error
 * after the write was sent), and every listing that did not hold its prefix's keys.
 */
import type { Verdict } from "../plan.ts"
import { counterValue } from "./ops.ts"

/** Mismatches and wrong listings quoted in a verdict; the rest are counted. */
const QUOTED = 3

export class CellAudit {
  private readonly applied = new Map<string, number>()
  private readonly unknown = new Map<string, number>()
  private wrongListings = 0
  private readonly listingProblems: string[] = []
  private listings = 0

  /** `counters`: the keys a cas-incr cell increments (none for other workloads). */
  constructor(readonly counters: readonly string[] = []) {
    for (const key of counters) {
      this.applied.set(key, 0)
      this.unknown.set(key, 0)
    }
  }

  /** The conditional write of `key` answered that it applied. */
  incremented(key: string): void {
    this.applied.set(key, (this.applied.get(key) ?? 0) + 1)
  }

  /** The conditional write of `key` failed with an error: it may or may not have applied. */
  outcomeUnknown(key: string): void {
    this.unknown.set(key, (this.unknown.get(key) ?? 0) + 1)
  }

  /** A listing answered; `problem` says what was wrong with it, if anything. */
  listed(problem: string | undefined): void {
    this.listings++
    if (problem === undefined) return
    this.wrongListings++
    if (this.listingProblems.length < QUOTED) this.listingProblems.push(problem)
  }

  /** Applied increments over the whole cell (warm-up and stragglers included). */
  get increments(): number {
    let sum = 0
    for (const n of this.applied.values()) sum += n
    return sum
  }

  /**
   * Each counter must hold at least the increments acknowledged on it and at most those plus the
   * ones whose outcome is unknown; `values` are the counters read after every worker stopped.
   */
  counterVerdict(values: ReadonlyMap<string, string | undefined>): Verdict {
    let total = 0
    let unknown = 0
    const mismatches: string[] = []
    for (const key of this.counters) {
      const value = counterValue(key, values.get(key))
      const applied = this.applied.get(key) ?? 0
      const maybe = this.unknown.get(key) ?? 0
      total += value
      unknown += maybe
      if (value < applied || value > applied + maybe)
        mismatches.push(`${key} = ${value}, acknowledged ${applied}${maybe > 0 ? ` (+${maybe} unknown)` : ""}`)
    }
    const counted = `${this.counters.length} counters hold ${total}, acknowledged increments ${this.increments}${unknown > 0 ? ` (+${unknown} of unknown outcome)` : ""}`
    if (mismatches.length === 0) return { ok: true, summary: counted }
    const quoted = mismatches.slice(0, QUOTED).join("; ")
    const more = mismatches.length > QUOTED ? `; and ${mismatches.length - QUOTED} more` : ""
    return { ok: false, summary: `LOST OR EXTRA UPDATES: ${counted}; ${quoted}${more}` }
  }

  listingVerdict(): Verdict {
    if (this.wrongListings === 0)
      return { ok: true, summary: `${this.listings} listings, each the prefix's keys in order` }
    return {
      ok: false,
      summary: `WRONG LISTINGS: ${this.wrongListings} of ${this.listings}; ${this.listingProblems.join("; ")}`,
    }
  }
}
