import { describe, expect, test } from "bun:test"
import { shardOf } from "../src/index.ts"

describe("shardOf", () => {
  test("is FNV-1a of the UTF-8 bytes modulo nShards (fixed values: the mapping must never change)", () => {
    expect(shardOf("", 10)).toBe(0x811c9dc5 % 10)
    expect(shardOf("a", 1 << 30)).toBe(0xe40c292c % (1 << 30))
    expect(shardOf("foobar", 1 << 30)).toBe(0xbf9cf968 % (1 << 30))
  })

  test("spreads keys over every shard", () => {
    const counts = new Array(10).fill(0)
    for (let i = 0; i < 10_000; i++) counts[shardOf(`key-${i}`, 10)]++
    for (const c of counts) expect(c).toBeGreaterThan(800)
  })
})
