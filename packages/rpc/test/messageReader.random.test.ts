/**
 * Proves that whatever bytes the wire's msgpack reader (messageReader.ts) accepts, it reads as the
 * generic decoder does: random byte strings from every head byte it knows, in every width (64-bit
 * integers past 2^53, float32/64 of any bits), strings with stray non-ASCII bytes, maps with
 * repeated, numeric, non-ASCII and `__proto__` keys, binary of every length header, nested arrays
 * and maps, heads it leaves to the generic decoder (extensions, 0xc1), cut short or with a byte too
 * many; and that real envelopes of every kind are read, not left to the generic decoder.
 * Replay with KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { Decoder, Encoder } from "@msgpack/msgpack"
import { SeededRandom, seedFromEnv } from "../src/index.ts"
import { notRead, readMessage } from "../src/messageReader.ts"

const limits = { maxStrLength: 8 * 1024 * 1024, maxBinLength: 64 * 1024 * 1024 }
const decoder = new Decoder(limits)

const keyBytes = (random: SeededRandom): number[] => {
  switch (random.int(8)) {
    case 0:
      return [0xa9, ...Buffer.from("__proto__")]
    case 1:
      return [random.int(128)] // a number as a key
    case 2:
      return [0xa2, 0xc3, 0xa9] // non-ASCII
    case 3: {
      const n = random.int(40)
      return [0xd9, n, ...Array.from({ length: n }, () => 0x61 + random.int(3))]
    }
    default: {
      // Few distinct short keys, so that maps repeat them (and the key cache serves them).
      const n = 1 + random.int(3)
      return [0xa0 + n, ...Array.from({ length: n }, () => 0x61 + random.int(3))]
    }
  }
}

const generate = (random: SeededRandom, depth: number): number[] => {
  const bytes = (n: number) => Array.from({ length: n }, () => random.int(256))
  const text = (n: number) =>
    Array.from({ length: n }, () => (random.chance(0.03) ? 0x80 + random.int(128) : random.int(128)))
  const nested = (n: number) => {
    const out: number[] = []
    for (let i = 0; i < n; i++) out.push(...generate(random, depth + 1))
    return out
  }
  const entries = (n: number) => {
    const out: number[] = []
    for (let i = 0; i < n; i++) out.push(...keyBytes(random), ...generate(random, depth + 1))
    return out
  }
  const u16 = (n: number) => [n >> 8, n & 0xff]
  const u32 = (n: number) => [0, 0, n >> 8, n & 0xff]
  switch (random.int(depth > 3 ? 20 : 28)) {
    case 0:
      return [random.int(128)]
    case 1:
      return [0xe0 + random.int(32)]
    case 2:
      return [0xcc, ...bytes(1)]
    case 3:
      return [0xcd, ...bytes(2)]
    case 4:
      return [0xce, ...bytes(4)]
    case 5:
      return [0xcf, ...bytes(8)]
    case 6:
      return [0xd0, ...bytes(1)]
    case 7:
      return [0xd1, ...bytes(2)]
    case 8:
      return [0xd2, ...bytes(4)]
    case 9:
      return [0xd3, ...bytes(8)]
    case 10:
      return [0xca, ...bytes(4)]
    case 11:
      return [0xcb, ...bytes(8)]
    case 12: {
      const n = random.int(32)
      return [0xa0 + n, ...text(n)]
    }
    case 13: {
      const n = random.int(256)
      return [0xd9, n, ...text(n)]
    }
    case 14: {
      const n = random.int(300)
      return [0xda, ...u16(n), ...text(n)]
    }
    case 15: {
      const n = random.int(300)
      return [0xdb, ...u32(n), ...text(n)]
    }
    case 16: {
      const n = random.int(40)
      return [0xc4, n, ...bytes(n)]
    }
    case 17: {
      const n = random.int(300)
      return [
        [0xc5, ...u16(n)],
        [0xc6, ...u32(n)],
      ][random.int(2)]!.concat(bytes(n))
    }
    case 18:
      return [[0xc0, 0xc2, 0xc3, 0xc1, 0xd4, 0xc7][random.int(6)] as number]
    case 19:
      return [0x80]
    case 20: {
      const n = random.int(16)
      return [0x90 + n, ...nested(n)]
    }
    case 21: {
      const n = random.int(20)
      return [0xdc, ...u16(n), ...nested(n)]
    }
    case 22: {
      const n = random.int(20)
      return [0xdd, ...u32(n), ...nested(n)]
    }
    case 23:
    case 24: {
      const n = random.int(16)
      return [0x80 + n, ...entries(n)]
    }
    case 25: {
      const n = random.int(20)
      return [0xde, ...u16(n), ...entries(n)]
    }
    case 26: {
      const n = random.int(20)
      return [0xdf, ...u32(n), ...entries(n)]
    }
    default:
      return [0x82, 0xa1, 0x61, ...generate(random, depth + 1), 0xa1, 0x61, ...generate(random, depth + 1)]
  }
}

/**
 * Equal as decoded values: arrays item by item, maps key by key in the same order, binary as a view
 * of the same bytes with the same class, the rest by Object.is (NaN equals NaN, -0 is not 0).
 */
const same = (a: unknown, b: unknown): boolean => {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]))
  if (a instanceof Uint8Array) {
    return (
      b instanceof Uint8Array &&
      a.constructor === b.constructor &&
      a.buffer === b.buffer &&
      a.byteOffset === b.byteOffset &&
      a.byteLength === b.byteLength
    )
  }
  if (typeof a === "object" && a !== null) {
    if (typeof b !== "object" || b === null || Array.isArray(b) || b instanceof Uint8Array) return false
    if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false
    const ka = Object.keys(a)
    const kb = Object.keys(b)
    return (
      ka.length === kb.length &&
      ka.every((k, i) => k === kb[i] && same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
    )
  }
  return Object.is(a, b)
}

const show = (x: unknown) => Bun.inspect(x, { depth: 6 })

test("every input the wire reader accepts decodes as the generic decoder decodes it", () => {
  const seed = seedFromEnv()
  console.log(`wire msgpack reader: seed ${seed} (replay: KV_SEED=${seed})`)
  const random = new SeededRandom(seed)
  let accepted = 0
  let maps = 0
  const differences: string[] = []
  for (let i = 0; i < 20_000; i++) {
    let built = generate(random, 0)
    if (random.chance(0.1)) built = built.slice(0, random.int(built.length + 1))
    if (random.chance(0.05)) built.push(random.int(256))
    // Node's dgram hands a Buffer: binary must come back as a view of the same class.
    const bytes = random.chance(0.5) ? new Uint8Array(built) : Buffer.from(built)
    const read = readMessage(bytes, limits)
    if (read === notRead) continue
    accepted++
    if (typeof read === "object" && read !== null && !Array.isArray(read) && !(read instanceof Uint8Array)) maps++
    let generic: unknown
    try {
      generic = decoder.decode(bytes)
    } catch {
      generic = "throws"
    }
    if (!same(read, generic) && differences.length < 5) {
      differences.push(`${Buffer.from(bytes).toString("hex")}: read ${show(read)}, generic ${show(generic)}`)
    }
  }
  expect(differences).toEqual([])
  expect(accepted).toBeGreaterThan(3_000)
  expect(maps).toBeGreaterThan(300)
}, 60_000)

test("the messages the servers and clients exchange are read without the generic decoder", () => {
  const encoder = new Encoder({ ignoreUndefined: true })
  const envelopes: unknown[] = [
    [
      1,
      0,
      2 ** 40 + 7,
      "kv.command",
      { clientId: 2 ** 52 + 3, seq: 9, ackedBelow: 4, op: { op: "put", key: "k", value: "v".repeat(4096) } },
    ],
    [1, 1, 12, { ok: true, value: "x".repeat(100) }],
    [1, 1, 12, { ok: false, error: "WrongLeader", leaderHint: "127.0.0.1:7001" }],
    [
      1,
      3,
      "raft",
      [
        {
          type: "Append",
          from: 1,
          to: 2,
          term: 3,
          prevIndex: 9,
          prevTerm: 3,
          commit: 8,
          entries: [{ term: 3, index: 10, data: new Uint8Array(70_000) }],
        },
      ],
    ],
    [
      1,
      3,
      "raft",
      [{ type: "AppendResp", from: 2, to: 1, term: 3, index: 10, reject: false, conflictTerm: 0, conflictIndex: 0 }],
    ],
  ]
  for (const envelope of envelopes) {
    const bytes = encoder.encode(envelope)
    const read = readMessage(bytes, limits)
    expect(read).not.toBe(notRead)
    expect(same(read, decoder.decode(bytes))).toBe(true)
  }
})
