import type { ModelOp } from "./kvModel.ts"

/**
 * The values of a set of appends, for asking whether the rest of a get's output could be made of them.
 * Substrings are compared by polynomial hash (kvModel's hash, read off the output's prefix hashes), so a
 * question costs O(output length × distinct value lengths), not a string compare per append per position.
 * A hash collision can only make `cover` answer yes wrongly, which the search treats as "cannot rule out".
 */
export class AppendValues {
  private readonly keys = new Set<number>()
  private readonly lengths: number[] = []
  private readonly shifts: number[] = []
  private readonly reached: number[] = []
  private reachedIn = new Int32Array(64)
  private generation = 0

  clear(): void {
    this.keys.clear()
    this.lengths.length = 0
    this.shifts.length = 0
  }

  add(op: ModelOp): void {
    const length = op.text.length
    if (length === 0) return
    this.keys.add(valueKey(op.textHash, length))
    if (!this.lengths.includes(length)) {
      this.lengths.push(length)
      this.shifts.push(op.textShift)
    }
  }

  /**
   * Whether text[start..] can be cut into added values, each usable any number of times (allowing reuse
   * only makes the answer yes more often). `prefixHashes[i]` is the hash of text[0..i).
   */
  cover(text: string, prefixHashes: Uint32Array, start: number): boolean {
    const end = text.length
    if (start === end) return true
    if (this.lengths.length === 0) return false
    if (this.reachedIn.length <= end) this.reachedIn = new Int32Array(end + 1)
    const generation = ++this.generation
    const reached = this.reached
    reached.length = 0
    reached.push(start)
    while (reached.length > 0) {
      const at = reached.pop()!
      const atHash = prefixHashes[at]!
      for (let i = 0; i < this.lengths.length; i++) {
        const length = this.lengths[i]!
        const to = at + length
        if (to > end || this.reachedIn[to] === generation) continue
        const hash = (prefixHashes[to]! - Math.imul(atHash, this.shifts[i]!)) | 0
        if (!this.keys.has(valueKey(hash >>> 0, length))) continue
        if (to === end) return true
        this.reachedIn[to] = generation
        reached.push(to)
      }
    }
    return false
  }
}

const valueKey = (hash: number, length: number): number => hash ^ Math.imul(length, 0x9e3779b1)
