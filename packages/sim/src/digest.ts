/**
 * A running hash of every event in a run. Two runs of one seed must produce the same digest;
 * the first event where they part is what `events` (when kept) is for.
 */
export type TraceField = string | number | boolean

export class TraceDigest {
  // Two independent 32-bit FNV-1a lanes (different offsets, different primes) give a 64-bit
  // digest without BigInt on the hot path.
  private a = 0x811c9dc5
  private b = 0x01000193 ^ 0x9e3779b9
  private count = 0
  private readonly kept: Array<string> | undefined

  constructor(options?: { readonly keepEvents?: boolean }) {
    this.kept = options?.keepEvents === true ? [] : undefined
  }

  record(kind: string, ...fields: ReadonlyArray<TraceField>): void {
    const line = fields.length === 0 ? kind : `${kind} ${fields.join(" ")}`
    this.count++
    this.kept?.push(line)
    // The separator keeps ("ab","c") and ("a","bc") apart.
    this.fold(`${line}\n`)
  }

  private fold(text: string): void {
    let a = this.a
    let b = this.b
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      a = Math.imul(a ^ c, 0x01000193)
      b = Math.imul(b ^ c, 0x5bd1e995)
      b ^= b >>> 15
    }
    this.a = a >>> 0
    this.b = b >>> 0
  }

  /** 16 hex digits summarising every event recorded so far. */
  get value(): string {
    return this.a.toString(16).padStart(8, "0") + this.b.toString(16).padStart(8, "0")
  }

  get events(): number {
    return this.count
  }

  /** The recorded lines, only when made with `keepEvents: true`. */
  get lines(): ReadonlyArray<string> {
    return this.kept ?? []
  }
}
