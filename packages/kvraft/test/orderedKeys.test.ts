/**
 * Proves that the ordered index of a store's keys lists them in code point order whatever order
 * they were inserted in (ascending, as a bulk load does, descending or shuffled), across the
 * splits of its blocks, and after removals.
 */
import { expect, test } from "bun:test"
import { compareKeys, OrderedKeys } from "../src/stateMachine/orderedKeys.ts"

const keys = Array.from({ length: 5_000 }, (_, i) => `key${String(i).padStart(5, "0")}${i % 7 === 0 ? "\uE000" : ""}`)

const shuffled = (items: string[]): string[] => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = (i * 7919) % (i + 1)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

test("keys inserted in any order list in code point order, also after removals", () => {
  const sorted = [...keys].sort(compareKeys)
  for (const order of [keys, [...keys].reverse(), shuffled(keys)]) {
    const index = new OrderedKeys()
    for (const key of order) index.insert(key)
    expect([...index.all()]).toEqual(sorted)
    expect(index.size).toBe(keys.length)
    for (const key of order.filter((_, i) => i % 3 === 0)) index.remove(key)
    const left = sorted.filter((key) => order.indexOf(key) % 3 !== 0)
    expect([...index.all()]).toEqual(left)
    expect([...index.from("key02", "key03000")]).toEqual(left.filter((k) => compareKeys(k, "key03000") > 0))
  }
})
