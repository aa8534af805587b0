import { describe, expect, test } from "bun:test"
import { FrameCodec, MAX_DATAGRAM_BYTES, Reassembler } from "../src/index.ts"

const bytes = (n: number, seed = 1): Uint8Array => {
  const out = new Uint8Array(n)
  let x = seed
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0
    out[i] = x >>> 24
  }
  return out
}

const roundTrip = (codec: FrameCodec, message: Uint8Array, order?: (n: number) => number[]): Uint8Array | undefined => {
  const datagrams = codec.encode(message, 7)
  if (datagrams === undefined) return undefined
  const reassembler = new Reassembler()
  const indexes = order?.(datagrams.length) ?? datagrams.map((_, i) => i)
  let out: Uint8Array | undefined
  for (const i of indexes) {
    const frame = codec.decode(datagrams[i]!)
    if (typeof frame === "string") throw new Error(`dropped: ${frame}`)
    if (frame.kind === "whole") return frame.body
    const r = reassembler.add("peer", frame.msgId, frame.index, frame.count, frame.body, 0)
    if (r.done) out = r.message
  }
  return out
}

describe("framing", () => {
  test("a small message travels as one datagram", () => {
    const codec = new FrameCodec()
    const message = bytes(100)
    expect(codec.encode(message, 1)).toHaveLength(1)
    expect(roundTrip(codec, message)).toEqual(message)
  })

  test("a 4 MiB message splits into datagrams of at most 60 KiB and reassembles in any order", () => {
    const codec = new FrameCodec()
    const message = bytes(4 * 1024 * 1024, 9)
    const datagrams = codec.encode(message, 3)!
    expect(datagrams.length).toBeGreaterThan(60)
    for (const d of datagrams) expect(d.length).toBeLessThanOrEqual(MAX_DATAGRAM_BYTES)
    expect(roundTrip(codec, message, (n) => Array.from({ length: n }, (_, i) => n - 1 - i))).toEqual(message)
  })

  test("a message over the size limit is refused at the sender", () => {
    const codec = new FrameCodec({ maxMessageBytes: 1024 * 1024 })
    expect(codec.encode(bytes(1024 * 1024 + 1), 1)).toBeUndefined()
  })

  test("with a cluster key, datagrams are sealed (AES-256-GCM) and forged or unsigned ones are dropped", () => {
    const signed = new FrameCodec({ key: "secret-a" })
    const other = new FrameCodec({ key: "secret-b" })
    const unsigned = new FrameCodec()
    const message = bytes(500)
    const [datagram] = signed.encode(message, 1)!
    expect(roundTrip(signed, message)).toEqual(message)
    expect(other.decode(datagram!)).toBe("unauthenticated")
    expect(signed.decode(unsigned.encode(message, 1)![0]!)).toBe("unauthenticated")
    // Any single bit flipped anywhere breaks the tag.
    for (let i = 0; i < datagram!.length; i += 7) {
      const forged = datagram!.slice()
      forged[i]! ^= 1 << (i % 8)
      expect(signed.decode(forged)).toBe("unauthenticated")
    }
  })

  test("truncated, wrong-version and impossible fragment headers are malformed, not thrown", () => {
    const codec = new FrameCodec()
    expect(codec.decode(new Uint8Array([]))).toBe("malformed")
    expect(codec.decode(new Uint8Array([1]))).toBe("malformed")
    expect(codec.decode(new Uint8Array([9, 0, 1, 2]))).toBe("malformed")
    expect(codec.decode(new Uint8Array([1, 7, 1, 2]))).toBe("malformed")
    expect(codec.decode(new Uint8Array([1, 1, 0, 0, 0, 1, 0, 5, 0, 3, 0]))).toBe("malformed") // index >= count
    expect(codec.decode(new Uint8Array([1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0]))).toBe("malformed") // count 1
    expect(codec.decode(new Uint8Array(MAX_DATAGRAM_BYTES + 1))).toBe("oversized")
    expect(codec.decode(new Uint8Array([1, 1, 0, 0, 0, 1, 0, 0, 0xff, 0xff, 0]))).toBe("oversized") // 65535 fragments > 8 MiB
  })
})

describe("reassembly", () => {
  test("incomplete messages expire and are counted", () => {
    const r = new Reassembler({ expireMs: 1_000 })
    expect(r.add("a", 1, 0, 3, bytes(10), 0).done).toBe(false)
    expect(r.add("a", 2, 0, 3, bytes(10), 500).done).toBe(false)
    expect(r.pendingMessages).toBe(2)
    const later = r.add("b", 3, 0, 2, bytes(10), 1_200)
    expect(later).toEqual({ done: false, expired: 1 })
    expect(r.pendingMessages).toBe(2)
    expect(r.expire(5_000)).toBe(2)
    expect(r.buffered).toBe(0)
  })

  test("a flood of never-completing fragments is bounded in bytes and messages", () => {
    const r = new Reassembler({ maxBufferedBytes: 100_000, maxPendingMessages: 50, expireMs: 60_000 })
    let dropped = 0
    for (let i = 0; i < 10_000; i++) {
      const result = r.add(`x${i % 7}`, i, 0, 1000, bytes(1000, i), i)
      if (!result.done && result.dropped !== undefined) dropped++
      expect(r.buffered).toBeLessThanOrEqual(100_000)
      expect(r.pendingMessages).toBeLessThanOrEqual(50)
    }
    expect(dropped).toBe(10_000 - 50)
  })

  test("duplicate fragments are ignored and do not complete a message early", () => {
    const r = new Reassembler()
    expect(r.add("a", 1, 0, 2, bytes(5, 1), 0).done).toBe(false)
    expect(r.add("a", 1, 0, 2, bytes(5, 1), 0).done).toBe(false)
    const done = r.add("a", 1, 1, 2, bytes(5, 2), 0)
    expect(done.done && done.message.length).toBe(10)
  })
})
