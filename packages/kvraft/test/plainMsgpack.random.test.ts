/**
 * Proves that the fast reader of plain msgpack (plainMsgpack.ts) and the command decoder built on
 * it answer exactly what the generic decoder answers: for every command shape, for random msgpack
 * values, and for those bytes damaged (cut, extended, bytes changed). Replay with KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { Decoder, Encoder } from "@msgpack/msgpack"
import { decodeCommandFields } from "../src/stateMachine/command.ts"
import { readCommonCommand } from "../src/stateMachine/commonCommand.ts"
import {
  decodeCommand,
  decodeLeaderCommand,
  encodeCommand,
  type KvCommand,
  type KvOp,
} from "../src/stateMachine/index.ts"
import { notPlain, readPlainMsgpack } from "../src/stateMachine/plainMsgpack.ts"

const encoder = new Encoder()
const decoder = new Decoder()

/** What the generic decoder makes of `bytes`, or "throws". */
const generic = (bytes: Uint8Array): unknown => {
  try {
    return decoder.decode(bytes)
  } catch {
    return "throws"
  }
}

const strings = ["", "k", "key00000001", "v".repeat(100), "é", "日本", "😀", "\ud800", "x".repeat(40_000), "a\u0000b"]
const numbers = [
  0,
  1,
  127,
  128,
  255,
  256,
  65_535,
  65_536,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53 - 1,
  2 ** 60,
  -(2 ** 60),
  -1,
  -32,
  -33,
  -129,
  -(2 ** 31),
  -(2 ** 40),
  0.5,
  -0,
  1e300,
]

/** A client id as the clerk draws them: up to 53 bits. */
const id53 = (random: SeededRandom): number => 1 + random.int(2 ** 21) * 2 ** 32 + random.int(2 ** 32)

const randomValue = (random: SeededRandom, depth: number): unknown => {
  switch (random.int(depth > 2 ? 5 : 7)) {
    case 0:
      return strings[random.int(strings.length)]
    case 1:
      return numbers[random.int(numbers.length)]
    case 2:
      return random.chance(0.5) ? null : random.chance(0.5)
    case 3:
      return "ascii".repeat(random.int(60))
    case 4:
      return random.chance(0.5) ? random.int(2 ** 31) : id53(random)
    case 5:
      return Array.from({ length: random.int(random.chance(0.1) ? 40 : 6) }, () => randomValue(random, depth + 1))
    default:
      return random.chance(0.5) ? { a: 1 } : new Uint8Array([1, 2, 3])
  }
}

const randomOp = (random: SeededRandom): KvOp => {
  const key = strings[random.int(strings.length)]!
  const value = random.chance(0.7) ? `value-${random.int(1e6)}` : strings[random.int(strings.length)]!
  const when = { target: "version" as const, cmp: "==" as const, value: random.int(5) }
  switch (random.int(8)) {
    case 0:
      return random.chance(0.5) ? { op: "put", key, value } : { op: "put", key, value, lease: 1 + random.int(1e9) }
    case 1:
      return { op: "append", key, value }
    case 2:
      return { op: "delete", key }
    case 3:
      return { op: "casPut", key, value, when }
    case 4:
      return { op: "casDelete", key, when: { target: "value", cmp: "<", value } }
    case 5:
      return {
        op: "txn",
        key,
        compare: random.chance(0.5) ? [] : [{ key, ...when }],
        success: Array.from({ length: random.int(100) }, (_, i) => ({
          op: "put" as const,
          key: `key${i}`,
          value: value.slice(0, 200),
        })),
        failure: [
          { op: "get", key },
          { op: "delete", key },
        ],
      }
    case 6:
      return { op: "leaseGrant", key: "", ttlMs: 1 + random.int(60_000) }
    default:
      return { op: "leaseRevoke", key: "", lease: 1 + random.int(1e9) }
  }
}

const damaged = (random: SeededRandom, bytes: Uint8Array): Uint8Array => {
  const out = new Uint8Array(bytes.length + 2)
  out.set(bytes)
  switch (random.int(3)) {
    case 0:
      return out.subarray(0, random.int(bytes.length))
    case 1:
      return out.subarray(0, bytes.length + 1 + random.int(2))
    default: {
      const copy = bytes.slice()
      for (let n = 1 + random.int(3); n > 0; n--) copy[random.int(copy.length)] = random.int(256)
      return copy
    }
  }
}

test("the plain reader reads what the generic decoder reads, or leaves the bytes to it", () => {
  const seed = seedFromEnv()
  console.log(`plain msgpack: seed ${seed} (replay: KV_SEED=${seed})`)
  const random = new SeededRandom(seed)
  let plain = 0
  for (let i = 0; i < 20_000; i++) {
    const encoded = encoder.encode(randomValue(random, 0))
    const bytes = random.chance(0.5) ? encoded : damaged(random, encoded)
    const read = readPlainMsgpack(bytes)
    if (read === notPlain) continue
    plain++
    expect(Object.is(read, generic(bytes)) || Bun.deepEquals(read, generic(bytes), true)).toBe(true)
  }
  // Most random values are plain: the comparison above is not vacuous.
  expect(plain).toBeGreaterThan(5_000)
}, 30_000)

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()
/** Every string in `value` survives UTF-8 encoding (no lone surrogates). */
const wellFormed = (value: unknown): boolean =>
  typeof value === "string"
    ? fromUtf8.decode(utf8.encode(value)) === value
    : Array.isArray(value)
      ? value.every(wellFormed)
      : true

test("commands decode the same through the plain reader as through the generic decoder", () => {
  const seed = seedFromEnv()
  console.log(`command decode: seed ${seed} (replay: KV_SEED=${seed})`)
  const random = new SeededRandom(seed)
  for (let i = 0; i < 3_000; i++) {
    const command: KvCommand = {
      clientId: id53(random),
      seq: 1 + random.int(1000),
      ackedBelow: 1,
      nowMs: random.chance(0.5) ? random.int(1e9) : random.next() * 1e6,
      op: randomOp(random),
    }
    const encoded = encodeCommand(command)
    const bytes = random.chance(0.5) ? encoded : damaged(random, encoded)
    const fields = generic(bytes)
    // What decodeCommand must answer: the generic decode, then its checks (re-encoding a valid one gives it back).
    const decoded = decodeCommand(bytes)
    if (decoded === undefined) {
      if (bytes === encoded) throw new Error(`a valid command did not decode: ${JSON.stringify(command)}`)
      continue
    }
    // Damaged UTF-8 decodes to lone surrogates, which re-encoding turns into U+FFFD: such a command
    // cannot round-trip, and only the generic decoder reads it (the plain reader takes ASCII alone).
    if (!wellFormed(fields)) continue
    expect(generic(encodeCommand(decoded))).toEqual(fields)
    if (bytes === encoded) expect(decoded).toEqual(command)
    expect(decodeLeaderCommand(bytes)).toBeUndefined()
  }
}, 30_000)

/** Whether `op` is of a kind the common reader takes, with only ASCII strings. */
const commonKind = (op: KvOp): boolean => {
  const ascii = (text: string) => [...text].every((c) => c.charCodeAt(0) < 0x80)
  switch (op.op) {
    case "put":
    case "append":
      return ascii(op.key) && ascii(op.value)
    case "delete":
      return ascii(op.key)
    case "txn":
      return (
        op.compare.length === 0 &&
        ascii(op.key) &&
        [...op.success, ...op.failure].every((o) => ascii(o.key) && (o.op !== "put" || ascii(o.value)))
      )
    default:
      return false
  }
}

test("the common commands' reader answers what the general decode answers, or leaves the bytes to it", () => {
  const seed = seedFromEnv()
  console.log(`common command reader: seed ${seed} (replay: KV_SEED=${seed})`)
  const random = new SeededRandom(seed)
  let taken = 0
  let takenDamaged = 0
  for (let i = 0; i < 6_000; i++) {
    const command: KvCommand = {
      clientId: random.chance(0.1) ? 1 + random.int(100) : id53(random),
      seq: 1 + random.int(random.chance(0.5) ? 100 : 2 ** 31),
      ackedBelow: 1 + random.int(100),
      nowMs: random.chance(0.2) ? random.next() * 1e6 : random.chance(0.5) ? random.int(1e9) : 1.7e12 + random.int(1e9),
      op: randomOp(random),
    }
    const encoded = encodeCommand(command)
    const bytes = random.chance(0.5) ? encoded : damaged(random, encoded)
    const common = readCommonCommand(bytes)
    if (bytes === encoded && commonKind(command.op)) expect(common).toEqual(command)
    if (common === undefined) continue
    taken++
    if (bytes !== encoded) takenDamaged++
    expect(Bun.deepEquals(common, decodeCommandFields(bytes), true)).toBe(true)
  }
  console.log(`common command reader: took ${taken} of 6,000 (${takenDamaged} damaged)`)
  // About one command in seven is common and ASCII throughout: the comparisons above are not vacuous.
  expect(taken).toBeGreaterThan(400)
  expect(takenDamaged).toBeGreaterThan(25)
}, 30_000)
