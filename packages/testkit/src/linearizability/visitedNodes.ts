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
  private words: Uint32Array
  private readonly states: KvState[] = []
  private chain: Int32Array
  private readonly firstInBucket = new IntTable(1024)
  private count = 0
  private readonly capacity: number

  constructor(private readonly wordsPerSet: number) {
    this.words = new Uint32Array(wordsPerSet * 1024)
    this.chain = new Int32Array(1024)
    this.capacity = Math.min(maxNodes, Math.floor(maxStoredWords / wordsPerSet))
  }

  /** Adds the node; false when it was already there. Throws SearchBudgetExhausted past the memory bound. */
  add(linearized: Bitset, state: KvState): boolean {
    const key = linearized.hash ^ Math.imul(state.hash + state.value.length, 0x27d4eb2d)
    const first = this.firstInBucket.get(key, -1)
    for (let i = first; i !== -1; i = this.chain[i]!) {
      if (sameState(this.states[i]!, state) && this.sameSet(i, linearized.words)) return false
    }
    if (this.count === this.capacity)
      throw new SearchBudgetExhausted(`out of memory for search nodes after ${this.count} of them`)
    if (this.count === this.chain.length) this.grow()
    // A loop, not words.set: sets are a few words long, and the native call costs more than the copy.
    const offset = this.count * this.wordsPerSet
    for (let i = 0; i < this.wordsPerSet; i++) this.words[offset + i] = linearized.words[i]!
    this.states.push(state)
    this.chain[this.count] = first
    this.firstInBucket.set(key, this.count)
    this.count++
    return true
  }

  private sameSet(entry: number, words: Uint32Array): boolean {
    const offset = entry * this.wordsPerSet
    for (let i = 0; i < words.length; i++) if (this.words[offset + i] !== words[i]) return false
    return true
  }

  private grow(): void {
    const chain = new Int32Array(Math.min(this.chain.length * 2, this.capacity))
    chain.set(this.chain)
    this.chain = chain
    const words = new Uint32Array(chain.length * this.wordsPerSet)
    words.set(this.words)
    this.words = words
  }
}
