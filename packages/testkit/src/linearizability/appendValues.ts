import { IntTable } from "./intTable.ts"
import type { ModelOp } from "./kvModel.ts"

/**
 * The values of a multiset of appends, for asking whether the rest of a get's output could be made of
 * them, each append used at most once. Substrings are compared by polynomial hash (kvModel's hash, read
 * off the output's prefix hashes), so trying a cut costs O(1) rather than a string compare. A hash
 * collision can only make `cover` answer yes wrongly, which the search treats as "cannot rule out".
 */
export class AppendValues {
  /** How many appends have each value, keyed by the value's hash and length. */
  private readonly counts = new IntTable()
  private readonly lengths: number[] = []
  private readonly shifts: number[] = []
  // The cover search's stack: a position in the text, the next value length to try there, and the value
  // used to get past it.
  private positions = new Int32Array(64)
  private nextLength = new Int32Array(64)
  private used = new Int32Array(64)

  clear(): void {
    this.counts.clear()
    this.lengths.length = 0
    this.shifts.length = 0
  }

  add(op: ModelOp): void {
    const length = op.text.length
    if (length === 0) return
    const key = valueKey(op.textHash, length)
    this.counts.set(key, this.counts.get(key, 0) + 1)
    if (!this.lengths.includes(length)) {
      this.lengths.push(length)
      this.shifts.push(op.textShift)
    }
  }

  /**
   * Whether text[start..] can be cut into added values, each append used at most once. `prefixHashes[i]`
   * is the hash of text[0..i). A depth-first search over the cuts, which is linear when values cannot be
   * confused (the usual case: unique tokens); past an effort bound it gives up and answers yes.
   */
  cover(text: string, prefixHashes: Uint32Array, start: number): boolean {
    const end = text.length
    if (start === end) return true
    if (this.lengths.length === 0) return false
    if (this.positions.length <= end - start) this.growStack(Math.max(end - start + 1, this.positions.length * 2))
    let effort = 8 * (end - start) * this.lengths.length + 64
    let depth = 0
    this.positions[0] = start
    this.nextLength[0] = 0
    while (depth >= 0) {
      if (--effort < 0) {
        this.restore(depth)
        return true
      }
      const at = this.positions[depth]!
      if (at === end) {
        this.restore(depth)
        return true
      }
      let i = this.nextLength[depth]!
      for (; i < this.lengths.length; i++) {
        const to = at + this.lengths[i]!
        if (to > end) continue
        const hash = (prefixHashes[to]! - Math.imul(prefixHashes[at]!, this.shifts[i]!)) >>> 0
        const key = valueKey(hash, this.lengths[i]!)
        const count = this.counts.get(key, 0)
        if (count === 0) continue
        this.counts.set(key, count - 1)
        this.used[depth] = key
        this.nextLength[depth] = i + 1
        depth++
        this.positions[depth] = to
        this.nextLength[depth] = 0
        break
      }
      if (i === this.lengths.length) {
        depth--
        if (depth >= 0) this.release(this.used[depth]!)
      }
    }
    return false
  }

  /** Gives back the values used by the first `depth` levels of the cover search. */
  private restore(depth: number): void {
    for (let d = 0; d < depth; d++) this.release(this.used[d]!)
  }

  private release(key: number): void {
    this.counts.set(key, this.counts.get(key, 0) + 1)
  }

  private growStack(size: number): void {
    this.positions = new Int32Array(size)
    this.nextLength = new Int32Array(size)
    this.used = new Int32Array(size)
  }
}

const valueKey = (hash: number, length: number): number => hash ^ Math.imul(length, 0x9e3779b9)
