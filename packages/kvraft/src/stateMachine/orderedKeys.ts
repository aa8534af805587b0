/**
 * The keys of a store in byte order (UTF-8 byte order is code point order), so that listing a
 * prefix visits only the keys it returns: a sorted list of sorted blocks, each at most
 * `maxBlock` keys. Finding a key is a binary search over blocks then within one; inserting or
 * removing moves at most one block's keys. At a million keys that is ~1,000 blocks of ~1,000.
 */

/**
 * Code point order of two strings. JavaScript's `<` compares UTF-16 code units, which puts
 * U+E000..U+FFFF after the surrogates of U+10000 and up; byte order puts them before.
 */
export const compareKeys = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    if (x >= 0xd800 && y >= 0xd800) return codeUnitRank(x) - codeUnitRank(y)
    return x - y
  }
  return a.length - b.length
}

// Surrogates (D800..DFFF) rank above E000..FFFF, as the code points they encode do.
const codeUnitRank = (c: number): number => (c >= 0xe000 ? c - 0x800 : c >= 0xd800 ? c + 0x2000 : c)

const maxBlock = 1024

export class OrderedKeys {
  /** Non-empty blocks, each sorted, every key of a block below every key of the next. */
  #blocks: string[][] = []
  #size = 0
  /**
   * While a frozen copy is out (see `freeze`): the blocks made since, which it does not hold and
   * which may be changed in place; any other block is copied before it is changed.
   */
  #owned: Set<string[]> | undefined

  /**
   * A copy of the keys as they are now, that later changes to this index leave as it is. Costs
   * one pointer per block; each block is copied when it is next changed here (copy on write).
   * The copy itself must not be changed.
   */
  freeze(): OrderedKeys {
    const copy = new OrderedKeys()
    copy.#blocks = this.#blocks.slice()
    copy.#size = this.#size
    this.#owned = new Set()
    return copy
  }

  /** Block b, ready to be changed: a private copy if a frozen copy may share it. */
  #own(b: number): string[] {
    const block = this.#blocks[b]!
    if (this.#owned === undefined || this.#owned.has(block)) return block
    const copy = block.slice()
    this.#owned.add(copy)
    this.#blocks[b] = copy
    return copy
  }

  /** A block split off or started since a freeze is this index's own. */
  #made(block: string[]): string[] {
    this.#owned?.add(block)
    return block
  }

  get size(): number {
    return this.#size
  }

  /** Adds `key`, which must not be present. */
  insert(key: string): void {
    this.#size++
    const blocks = this.#blocks
    if (blocks.length === 0) {
      blocks.push(this.#made([key]))
      return
    }
    // Keys often come in order (a bulk load, names that grow with time): past the last key, no search.
    const tail = blocks[blocks.length - 1]!
    if (compareKeys(tail[tail.length - 1]!, key) < 0) {
      const last = this.#own(blocks.length - 1)
      last.push(key)
      if (last.length > maxBlock) blocks.push(this.#made(last.splice(last.length >> 1)))
      return
    }
    const b = this.#blockFor(key)
    const block = this.#own(b)
    block.splice(lowerBound(block, key), 0, key)
    if (block.length > maxBlock) blocks.splice(b + 1, 0, this.#made(block.splice(block.length >> 1)))
  }

  /** Removes `key`, which must be present. */
  remove(key: string): void {
    const b = this.#blockFor(key)
    const at = lowerBound(this.#blocks[b]!, key)
    if (this.#blocks[b]![at] !== key) throw new Error(`OrderedKeys: ${JSON.stringify(key)} is not indexed`)
    const block = this.#own(b)
    block.splice(at, 1)
    this.#size--
    if (block.length === 0) this.#blocks.splice(b, 1)
  }

  /**
   * Keys in order, from the first one above `after` (from the first one at or above `from` when
   * `after` is undefined); the caller stops iterating when it has enough.
   */
  *from(from: string, after?: string): Generator<string> {
    const start = after !== undefined && compareKeys(after, from) >= 0 ? after : from
    const exclusive = start === after
    const blocks = this.#blocks
    let b = blocks.length === 0 ? 0 : this.#blockFor(start)
    let i = b < blocks.length ? lowerBound(blocks[b]!, start) : 0
    for (; b < blocks.length; b++, i = 0) {
      const block = blocks[b]!
      for (; i < block.length; i++) {
        const key = block[i]!
        if (exclusive && key === start) continue
        yield key
      }
    }
  }

  /** Every key in order. */
  *all(): Generator<string> {
    for (const block of this.#blocks) yield* block
  }

  /** Replaces the contents with `keys`, which must be sorted and distinct (checked). */
  static fromSorted(keys: readonly string[]): OrderedKeys | undefined {
    for (let i = 1; i < keys.length; i++) if (compareKeys(keys[i - 1]!, keys[i]!) >= 0) return undefined
    return OrderedKeys.fromSortedUnchecked(keys)
  }

  /** An index of `keys`, which the caller has checked are sorted and distinct. */
  static fromSortedUnchecked(keys: readonly string[]): OrderedKeys {
    const index = new OrderedKeys()
    const half = maxBlock >> 1
    for (let i = 0; i < keys.length; i += half) index.#blocks.push(keys.slice(i, i + half))
    index.#size = keys.length
    return index
  }

  /** An index of `keys` in any order. */
  static of(keys: readonly string[]): OrderedKeys {
    return OrderedKeys.fromSorted(keys) ?? OrderedKeys.fromSorted([...keys].sort(compareKeys))!
  }

  /** The block `key` belongs in: the last whose first key is at or below it (the first block if none). */
  #blockFor(key: string): number {
    const blocks = this.#blocks
    let lo = 0
    let hi = blocks.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (compareKeys(blocks[mid]![0]!, key) <= 0) lo = mid
      else hi = mid - 1
    }
    return lo
  }
}

/** The first position whose key is at or above `key`. */
const lowerBound = (block: readonly string[], key: string): number => {
  let lo = 0
  let hi = block.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (compareKeys(block[mid]!, key) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}
