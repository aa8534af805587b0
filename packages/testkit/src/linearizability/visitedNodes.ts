import type { Bitset } from "./bitset.ts"
import { IntTable } from "./intTable.ts"
import { type KvState, sameState } from "./kvModel.ts"
import { SearchBudgetExhausted } from "./stepBudget.ts"

/** Bounds the memory of one search (about 256 MiB of sets, and the map and state entries beside them). */
const maxStoredWords = 2 ** 26
const maxNodes = 2 ** 23

/**
 * The search nodes already explored: (set of linearized operations, model state) pairs. A node seen once
 * never needs exploring again, since it either led to a full linearization (and the search stopped) or
 * did not.
 *
 * Failing searches store hundreds of thousands of nodes, so the sets live side by side in one growing
 * word array and the entries of a hash bucket are chained by index, instead of one small typed array
 * and one object per node.
 */
export class VisitedNodes {
  /** The stored sets' windows (see Bitset.low/high), back to back. */
  private words = new Uint32Array(4096)
  private wordsUsed = 0
  private readonly states: KvState[] = []
  private lows = new Int32Array(1024)
  private offsets = new Int32Array(1024)
  private lengths = new Int32Array(1024)
  private chain = new Int32Array(1024)
  private readonly firstInBucket = new IntTable(1024)
  private count = 0

  /** Adds the node; false when it was already there. Throws SearchBudgetExhausted past the memory bound. */
  add(linearized: Bitset, state: KvState): boolean {
    const key = linearized.hash ^ Math.imul(state.hash + state.value.length, 0x27d4eb2d)
    const low = linearized.low
    const length = Math.max(0, linearized.high - low + 1)
    const first = this.firstInBucket.get(key, -1)
    for (let i = first; i !== -1; i = this.chain[i]!) {
      if (sameState(this.states[i]!, state) && this.sameSet(i, linearized.words, low, length)) return false
    }
    if (this.count === maxNodes || this.wordsUsed + length > maxStoredWords) {
      throw new SearchBudgetExhausted(`out of memory for search nodes after ${this.count} of them`)
    }
    if (this.count === this.chain.length) this.growNodes()
    while (this.wordsUsed + length > this.words.length) this.growWords()
    // A loop, not words.set: windows are a few words long, and the native call costs more than the copy.
    for (let i = 0; i < length; i++) this.words[this.wordsUsed + i] = linearized.words[low + i]!
    this.lows[this.count] = low
    this.offsets[this.count] = this.wordsUsed
    this.lengths[this.count] = length
    this.wordsUsed += length
    this.states.push(state)
    this.chain[this.count] = first
    this.firstInBucket.set(key, this.count)
    this.count++
    return true
  }

  private sameSet(entry: number, words: Uint32Array, low: number, length: number): boolean {
    if (this.lows[entry] !== low || this.lengths[entry] !== length) return false
    const offset = this.offsets[entry]!
    for (let i = 0; i < length; i++) if (this.words[offset + i] !== words[low + i]) return false
    return true
  }

  private growNodes(): void {
    const size = Math.min(this.chain.length * 2, maxNodes)
    const grow = (a: Int32Array) => {
      const b = new Int32Array(size)
      b.set(a)
      return b
    }
    this.chain = grow(this.chain)
    this.lows = grow(this.lows)
    this.offsets = grow(this.offsets)
    this.lengths = grow(this.lengths)
  }

  private growWords(): void {
    const words = new Uint32Array(Math.min(this.words.length * 2, maxStoredWords))
    words.set(this.words)
    this.words = words
  }
}
