/**
 * One piece of a shard being pulled in chunks: the bytes from `start` up to `start + limit` (or
 * the end of the shard). It survives lost replies and switching between replicas of the source:
 * every replica that froze the shard hands off the same bytes, so a pull resumes at `offset`
 * wherever it left off.
 */
export class ShardPullBuffer {
  #parts: Uint8Array[] = []
  #received = 0
  #total: number | undefined
  #checksum: number | undefined
  /** Which replica of the source to ask next. */
  nextServer = 0

  constructor(
    readonly configNum: number,
    readonly shard: number,
    readonly start = 0,
    readonly limit = Number.POSITIVE_INFINITY,
  ) {}

  /** Where the next chunk starts. */
  get offset(): number {
    return this.start + this.#received
  }

  /** The size of the whole shard, once a chunk has said it. */
  get total(): number | undefined {
    return this.#total
  }

  /** CRC-32 of the whole shard, once a chunk has said it. */
  get checksum(): number | undefined {
    return this.#checksum
  }

  complete(): boolean {
    return this.#total !== undefined && (this.offset === this.#total || this.#received >= this.limit)
  }

  /**
   * Adds the chunk a replica answered for `offset`. A reply that does not fit what came before
   * (another size or checksum, a stale offset, a chunk past the end, an empty chunk short of the
   * end) starts the piece over and returns false.
   */
  accept(offset: number, total: number, chunk: Uint8Array, checksum = 0): boolean {
    const fits =
      offset === this.offset &&
      (this.#total === undefined || (this.#total === total && this.#checksum === checksum)) &&
      offset + chunk.length <= total &&
      (chunk.length > 0 || offset === total)
    if (!fits) {
      this.reset()
      return false
    }
    this.#total = total
    this.#checksum = checksum
    if (chunk.length > 0) {
      const room = this.limit - this.#received
      this.#parts.push(chunk.slice(0, Math.min(chunk.length, room)))
      this.#received += Math.min(chunk.length, room)
    }
    return true
  }

  reset(): void {
    this.#parts = []
    this.#received = 0
    this.#total = undefined
    this.#checksum = undefined
  }

  /** The piece's bytes; only once complete. */
  bytes(): Uint8Array {
    if (!this.complete()) {
      throw new Error(`shard ${this.shard} pull is incomplete (${this.offset}/${this.#total})`)
    }
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
