/** Proves that rebalance places shards balanced, with the fewest moves, and independently of input order. */
import { describe, expect, test } from "bun:test"
import { rebalance } from "../src/config/index.ts"

const unassigned = (n: number) => new Array<number>(n).fill(0)

describe("rebalance", () => {
  test("the first group gets every shard", () => {
    expect(rebalance(unassigned(10), [7])).toEqual(new Array(10).fill(7))
  })

  test("groups joining an empty configuration split the shards, larger shares to the lower gids", () => {
    expect(rebalance(unassigned(10), [3, 1, 2])).toEqual([1, 1, 1, 1, 2, 2, 2, 3, 3, 3])
  })

  test("a joining group takes only the surplus of the loaded groups", () => {
    const before = [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    const after = rebalance(before, [1, 2, 3])
    // 10/3: shares 4, 3, 3. Gid 1 and 2 both hold 5; the tie goes to gid 1 (share 4).
    expect(after).toEqual([1, 1, 1, 1, 3, 2, 2, 2, 3, 3])
  })

  test("a leaving group's shards go to the groups below their share, and nothing else moves", () => {
    const before = [1, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    const after = rebalance(before, [1, 3])
    expect(after).toEqual([1, 1, 1, 1, 1, 3, 3, 3, 3, 3])
  })

  test("the groups that already hold the most keep the larger shares", () => {
    // Gid 9 holds 4; with shares 4, 3, 3 it keeps all of them.
    const before = [9, 9, 9, 9, 2, 2, 2, 5, 5, 5]
    expect(rebalance(before, [2, 5, 9])).toEqual(before)
  })

  test("an unbalanced assignment (after moves) moves exactly its surplus", () => {
    const before = [1, 1, 1, 1, 1, 1, 1, 1, 2, 2]
    const after = rebalance(before, [1, 2])
    expect(after).toEqual([1, 1, 1, 1, 1, 2, 2, 2, 2, 2])
  })

  test("more groups than shards: each shard stays where it is and some groups get none", () => {
    const before = [4, 8, 0]
    const after = rebalance(before, [1, 2, 4, 8, 16])
    expect(after).toEqual([4, 8, 1])
  })

  test("a group holding two shards gives one up when another group has none", () => {
    expect(rebalance([5, 5, 0], [5, 6, 7])).toEqual([5, 6, 7])
  })

  test("with no groups every shard is unassigned", () => {
    expect(rebalance([1, 2, 3, 1], [])).toEqual([0, 0, 0, 0])
  })

  test("one shard", () => {
    expect(rebalance([0], [4, 2])).toEqual([2])
    expect(rebalance([4], [4, 2])).toEqual([4])
    expect(rebalance([4], [2])).toEqual([2])
  })

  test("the order and repetition of the live gids do not matter", () => {
    const before = [3, 3, 3, 3, 3, 1, 1, 0, 0, 7]
    const expected = rebalance(before, [1, 3, 7, 11])
    expect(rebalance(before, [11, 7, 3, 1])).toEqual(expected)
    expect(rebalance(before, [7, 1, 11, 3, 7, 1])).toEqual(expected)
    expect(rebalance(before, new Set([3, 11, 1, 7]))).toEqual(expected)
  })

  test("gids beyond 2^32 sort numerically", () => {
    const big = 2 ** 40
    expect(rebalance(unassigned(3), [big, 2, big + 1])).toEqual([2, big, big + 1])
  })

  test("does not modify its input", () => {
    const before = Object.freeze([1, 1, 1, 2])
    rebalance(before, [2, 3])
    expect(before).toEqual([1, 1, 1, 2])
  })

  test("an invalid gid is a defect", () => {
    expect(() => rebalance(unassigned(2), [0])).toThrow(RangeError)
    expect(() => rebalance(unassigned(2), [-3])).toThrow(RangeError)
    expect(() => rebalance(unassigned(2), [1.5])).toThrow(RangeError)
  })
})
