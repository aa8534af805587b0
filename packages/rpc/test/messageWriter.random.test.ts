/**
 * Proves that the wire's msgpack writer (messageWriter.ts) writes, for every value it takes, the
 * very bytes the generic encoder writes: random values of every kind and width (integers at each
 * boundary of each encoding, past 2^32 and 2^53, negative ones, -0, NaN and infinities, floats,
 * strings of every header length, ASCII or not, binary and Buffers, arrays and maps of 15/16 and
 * more items, undefined in maps and arrays, class instances, Dates, other typed arrays, bigints),
 * nested; and that the messages servers and clients exchange are taken by it. Replay with
 * KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { Encoder } from "@msgpack/msgpack"
import { SeededRandom, seedFromEnv } from "../src/index.ts"
import { writeMessage } from "../src/messageWriter.ts"

const encoder = new Encoder({ ignoreUndefined: true })

const EDGES = [
  0,
  1,
  0x7f,
  0x80,
  0xff,
  0x100,
  0xffff,
  0x10000,
  0xffffffff,
  0x100000000,
  2 ** 40 + 3,
  Number.MAX_SAFE_INTEGER,
]

class Point {
  constructor(readonly x: number) {}
}

const generate = (random: SeededRandom, depth: number): unknown => {
  const text = (n: number) =>
    Array.from({ length: n }, () =>
      String.fromCharCode(random.chance(0.002) ? 0x80 + random.int(0x700) : 0x20 + random.int(0x5f)),
    ).join("")
  // Values the writer leaves to the generic encoder are rare, so that large maps and arrays are
  // often written whole.
  if (random.chance(0.01)) {
    return [new Date(0), new Point(1), new Uint16Array(2), 10n, new Map(), `${text(random.int(10))}é`][random.int(6)]
  }
  switch (random.int(depth > 3 ? 12 : 16)) {
    case 0: {
      const edge = EDGES[random.int(EDGES.length)]!
      const near = edge + random.int(3) - 1
      return random.chance(0.5) ? near : -near
    }
    case 1:
      return [-0, Number.NaN, Number.POSITIVE_INFINITY, 1.5, -2.25, 2 ** 53 + 2, -(2 ** 60), 1e-300][random.int(8)]
    case 2:
      return [null, undefined, true, false][random.int(4)]
    case 3:
      return text(random.int(40))
    case 4:
      return text([31, 32, 255, 256, 300][random.int(5)]!)
    case 5: {
      const n = [0, 5, 255, 256, 70_000][random.int(5)]!
      return random.chance(0.5) ? new Uint8Array(n).fill(7) : Buffer.alloc(n, 9)
    }
    case 6:
    case 7:
    case 8:
    case 9:
    case 10:
    case 11:
      return random.int(4)
    default: {
      const n = [0, 3, 15, 16, 17][random.int(5)]!
      if (random.chance(0.5)) return Array.from({ length: n }, () => generate(random, depth + 1))
      const out: Record<string, unknown> = random.chance(0.1) ? Object.create(null) : {}
      for (let i = 0; i < n; i++)
        out[random.chance(0.005) ? `ké${i}` : `k${random.int(30)}`] = generate(random, depth + 1)
      return out
    }
  }
}

test("every value the wire writer takes is written as the generic encoder writes it", () => {
  const seed = seedFromEnv()
  console.log(`wire msgpack writer: seed ${seed} (replay: KV_SEED=${seed})`)
  const random = new SeededRandom(seed)
  let written = 0
  const differences: string[] = []
  for (let i = 0; i < 20_000; i++) {
    const value = generate(random, 0)
    const bytes = writeMessage(value)
    if (bytes === undefined) continue
    written++
    let generic: Uint8Array | string
    try {
      generic = encoder.encode(value)
    } catch {
      generic = "throws"
    }
    if ((typeof generic === "string" || !Buffer.from(bytes).equals(Buffer.from(generic))) && differences.length < 5) {
      differences.push(`${Bun.inspect(value, { depth: 4 })}: ${Buffer.from(bytes).toString("hex").slice(0, 80)}`)
    }
  }
  expect(differences).toEqual([])
  expect(written).toBeGreaterThan(5_000)
}, 60_000)

test("the messages the servers and clients exchange are written without the generic encoder", () => {
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
          entries: [{ term: 3, index: 10, data: new Uint8Array(70_000) }],
          commit: 8,
        },
      ],
    ],
  ]
  for (const envelope of envelopes) {
    const bytes = writeMessage(envelope)
    expect(bytes).toBeDefined()
    expect(Buffer.from(bytes!).equals(Buffer.from(encoder.encode(envelope)))).toBe(true)
  }
})
