import type { LogBounds } from "./logRules.ts"

export interface FrameLocation {
  readonly segment: number
  readonly offset: number
  readonly size: number
}

/**
 * Where each live entry's frame sits in the WAL (entry data stays on disk), and the running byte
 * total behind raftStateBytes. Parallel number arrays keep the per-entry cost to a few words.
 */
export class WalIndex implements LogBounds {
  /** The log follows (base, baseTerm): the snapshot point of the last compaction, 0 before any. */
  base = 0
  baseTerm = 0
  /** Sum of the live entries' frame sizes. */
  entryBytes = 0
  private terms: number[] = []
  private segments: number[] = []
  private offsets: number[] = []
  private sizes: number[] = []

  get lastIndex(): number {
    return this.base + this.terms.length
  }

  termAt(index: number): number | undefined {
    if (index === this.base) return this.baseTerm
    return this.terms[index - this.base - 1]
  }

  locate(index: number): FrameLocation {
    const k = index - this.base - 1
    const segment = this.segments[k]
    const offset = this.offsets[k]
    const size = this.sizes[k]
    if (segment === undefined || offset === undefined || size === undefined) {
      throw new RangeError(`entry ${index} is not in the log (${this.base}, ${this.lastIndex}]`)
    }
    return { segment, offset, size }
  }

  /** Drops every entry >= index. Amortized O(1) per entry ever appended. */
  truncateFrom(index: number): void {
    const keep = Math.max(0, index - this.base - 1)
    for (let k = keep; k < this.sizes.length; k++) this.entryBytes -= this.sizes[k] as number
    this.terms.length = Math.min(this.terms.length, keep)
    this.segments.length = this.terms.length
    this.offsets.length = this.terms.length
    this.sizes.length = this.terms.length
  }

  /** Appends entry `index`, replacing any stored entry >= index; the caller checked contiguity. */
  append(index: number, term: number, location: FrameLocation): void {
    if (index <= this.lastIndex) this.truncateFrom(index)
    this.terms.push(term)
    this.segments.push(location.segment)
    this.offsets.push(location.offset)
    this.sizes.push(location.size)
    this.entryBytes += location.size
  }

  /** Empties the log and makes it follow (base, baseTerm). */
  restart(base: number, baseTerm: number): void {
    this.base = base
    this.baseTerm = baseTerm
    this.entryBytes = 0
    this.terms = []
    this.segments = []
    this.offsets = []
    this.sizes = []
  }
}
