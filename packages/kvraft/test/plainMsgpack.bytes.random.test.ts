/**
 * Proves that whatever bytes the plain msgpack reader accepts, it reads as the generic decoder does:
 * random byte strings built from every head byte the reader knows, in every width (a small number
 * in 64 bits, a positive one in a signed type, 64-bit integers past 2^53, float32 and float64 of any
 * bits, NaN and -0 included), strings with stray non-ASCII bytes, nested arrays, and heads it leaves
 * to the generic decoder (maps, binary, str32, extensions, 0xc1), cut short or with a byte too many.
 * Replay with KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { Decoder } from "@msgpack/msgpack"
import { notPlain, readPlainMsgpack } from "../src/stateMachine/plainMsgpack.ts"

const decoder = new Decoder()

const generate = (random: SeededRandom, depth: number): number[] => {
  const bytes = (n: number) => Array.from({ length: n }, () => random.int(256))
  const text = (n: number) =>
    Array.from({ length: n }, () => (random.chance(0.05) ? 0x80 + random.int(128) : random.int(128)))
  switch (random.int(depth > 3 ? 16 : 19)) {
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
      return [0xda, n >> 8, n & 0xff, ...text(n)]
    }
    case 15:
      return [[0xc0, 0xc2, 0xc3, 0xc1, 0xc4, 0xdb, 0x81, 0xd4, 0xdd][random.int(9)] as number]
    case 16: {
      const n = random.int(16)
      const out = [0x90 + n]
      for (let i = 0; i < n; i++) out.push(...generate(random, depth + 1))
      return out
    }
    case 17: {
      const n = random.int(20)
      const out = [0xdc, n >> 8, n & 0xff]
      for (let i = 0; i < n; i++) out.push(...generate(random, depth + 1))
      return out
    }
    default:
      return [0x81, 0xa1, 0x61, ...generate(random, depth + 1)]
  }
}

/** Equal as decoded values: arrays item by item, the rest by Object.is (NaN equals NaN, -0 is not 0). */
const same = (a: unknown, b: unknown): boolean => {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]))
  return Object.is(a, b)
}

test("every input the plain reader accepts decodes as the generic decoder decodes it", () => {
  const seed = seedFromEnv()
  console.log(`plain msgpack bytes: seed ${seed} (replay: KV_SEED=${seed})`)
  const random = new SeededRandom(seed)
  let accepted = 0
  const differences: string[] = []
  for (let i = 0; i < 60_000; i++) {
    let built = generate(random, 0)
    if (random.chance(0.1)) built = built.slice(0, random.int(built.length + 1))
    if (random.chance(0.05)) built.push(random.int(256))
    const bytes = new Uint8Array(built)
    const plain = readPlainMsgpack(bytes)
    if (plain === notPlain) continue
    accepted++
    let generic: unknown
    try {
      generic = decoder.decode(bytes)
    } catch {
      generic = "throws"
    }
    if (!same(plain, generic) && differences.length < 5) {
      differences.push(`${Buffer.from(bytes).toString("hex")}: plain ${String(plain)}, generic ${String(generic)}`)
    }
  }
  expect(differences).toEqual([])
  expect(accepted).toBeGreaterThan(10_000)
}, 30_000)
