/**
 * A hash table from int32 keys to int32 values in typed arrays (open addressing, linear probing), for
 * the search's hot paths where a JS Map's per-entry cost shows. `clear` is O(1): entries carry the
 * generation they were written in.
 */
export class IntTable {
  private keys: Int32Array
  private values: Int32Array
  private writtenIn: Int32Array
  private generation = 1
  private count = 0
  private mask: number
  private shift: number

  constructor(capacity = 64) {
    let size = 16
    while (size < capacity * 2) size *= 2
    this.keys = new Int32Array(size)
    this.values = new Int32Array(size)
    this.writtenIn = new Int32Array(size)
    this.mask = size - 1
    this.shift = 32 - Math.log2(size)
  }

  clear(): void {
    this.generation++
    this.count = 0
  }

  /** The value for `key`, or `missing`. */
  get(key: number, missing: number): number {
    for (let slot = this.slotOf(key); ; slot = (slot + 1) & this.mask) {
      if (this.writtenIn[slot] !== this.generation) return missing
      if (this.keys[slot] === key) return this.values[slot]!
    }
  }

  set(key: number, value: number): void {
    for (let slot = this.slotOf(key); ; slot = (slot + 1) & this.mask) {
      if (this.writtenIn[slot] !== this.generation) {
        this.keys[slot] = key
        this.values[slot] = value
        this.writtenIn[slot] = this.generation
        if (++this.count * 2 > this.mask) this.grow()
        return
      }
      if (this.keys[slot] === key) {
        this.values[slot] = value
        return
      }
    }
  }

  /** Fibonacci hashing: the top bits of key × 2^32/φ. */
  private slotOf(key: number): number {
    return Math.imul(key, 0x9e3779b1) >>> this.shift
  }

  private grow(): void {
    const { keys, values, writtenIn, generation } = this
    const size = keys.length * 2
    this.keys = new Int32Array(size)
    this.values = new Int32Array(size)
    this.writtenIn = new Int32Array(size)
    this.mask = size - 1
    this.shift = 32 - Math.log2(size)
    this.generation = 1
    this.count = 0
    for (let slot = 0; slot < keys.length; slot++) {
      if (writtenIn[slot] === generation) this.set(keys[slot]!, values[slot]!)
    }
  }
}
