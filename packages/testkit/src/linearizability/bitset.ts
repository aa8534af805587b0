/**
 * The set of operations already linearized on the current search path, one bit per operation.
 * The hash is kept up to date on every toggle (xor of a per-bit mix), so remembering a search node costs
 * O(1) to hash and only a word-by-word compare on a hash hit.
 */
export class Bitset {
  readonly words: Uint32Array
  hash = 0
  /**
   * Every word below `low` is full and every word above `high` is empty, so the set is told by
   * (low, words[low..high]): a window as wide as the operations still in flight, not the history.
   * That keeps remembered search nodes small on long histories with little concurrency.
   */
  low = 0
  high = -1

  constructor(size: number) {
    this.words = new Uint32Array((size + 31) >>> 5)
  }

  /** Flips one bit; the search only ever sets a clear bit and clears a set one. */
  toggle(bit: number): void {
    const word = bit >>> 5
    const mask = (1 << (bit & 31)) >>> 0
    const after = ((this.words[word] ?? 0) ^ mask) >>> 0
    this.words[word] = after
    this.hash ^= mixBit(bit)
    if ((after & mask) !== 0) {
      if (word > this.high) this.high = word
      if (word === this.low) while (this.low < this.words.length && this.words[this.low] === FULL) this.low++
    } else {
      if (word < this.low) this.low = word
      if (word === this.high) while (this.high >= 0 && this.words[this.high] === 0) this.high--
    }
  }
}

const FULL = 0xffffffff

/** murmur3's finalizer: spreads consecutive bit numbers over the whole 32-bit range so xor-ing them rarely cancels. */
const mixBit = (bit: number): number => {
  let h = (bit + 0x9e3779b9) | 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return h ^ (h >>> 16)
}
