/**
 * The part of a shard received so far while pulling it in chunks. It survives lost replies and
 * switching between replicas of the old owner: every replica that has reached the configuration
 * hands off the same frozen bytes, so a pull resumes at `offset` wherever it left off.
 */
export class ShardPullBuffer {
  #parts: Uint8Array[] = []
  #received = 0
  #total: number | undefined
  /** Which replica of the old owner to ask next. */
  nextServer = 0

  constructor(
    readonly configNum: number,
    readonly shard: number,
  ) {}

  /** Where the next chunk starts. */
  get offset(): number {
    return this.#received
  }

  get total(): number | undefined {
    return this.#total
  }

  complete(): boolean {
    return this.#total !== undefined && this.#received === this.#total
  }

  /**
   * Adds the chunk a replica answered for `offset`. A reply that does not fit what came before
   * (another size, a stale offset, a chunk past the end, an empty chunk short of the end) starts
   * the pull over and returns false.
   */
  accept(offset: number, total: number, chunk: Uint8Array): boolean {
    const fits =
      offset === this.#received &&
      (this.#total === undefined || this.#total === total) &&
      offset + chunk.length <= total &&
      (chunk.length > 0 || offset === total)
    if (!fits) {
      this.reset()
      return false
    }
    this.#total = total
    if (chunk.length > 0) {
      this.#parts.push(chunk.slice())
      this.#received += chunk.length
    }
    return true
  }

  reset(): void {
    this.#parts = []
    this.#received = 0
    this.#total = undefined
  }

  /** The whole shard; only once complete. */
  bytes(): Uint8Array {
    if (!this.complete()) throw new Error(`shard ${this.shard} pull is incomplete (${this.#received}/${this.#total})`)
    if (this.#parts.length === 1) return this.#parts[0]!
    const out = new Uint8Array(this.#received)
    let at = 0
    for (const part of this.#parts) {
      out.set(part, at)
      at += part.length
    }
    this.#parts = [out]
    return out
  }
}
