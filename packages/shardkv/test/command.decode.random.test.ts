/**
 * Proves that a shard group's entries decode the same whether a client write is read in place
 * (decodeShardCommand) or through the generic decoder (decodeShardCommandFields): client writes of
 * every kind and size (bin 8, 16 and 32), the group's own commands, and those bytes damaged (cut,
 * extended, bytes changed). Replay with KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import type { KvCommand, KvOp } from "@kv/kvraft"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import {
  decodeShardCommand,
  decodeShardCommandFields,
  encodeShardCommand,
  type ShardCommand,
} from "../src/stateMachine/command.ts"

const strings = ["", "k", "key0001", "v".repeat(100), "é", "😀", "x".repeat(300), "y".repeat(70_000)]

const randomOp = (random: SeededRandom): KvOp => {
  const pick = () => strings[random.int(random.chance(0.05) ? strings.length : strings.length - 1)]!
  switch (random.int(5)) {
    case 0:
      return random.chance(0.7)
        ? { op: "put", key: pick(), value: pick() }
        : { op: "put", key: "k", value: "v", lease: 7 }
    case 1:
      return { op: "append", key: pick(), value: pick() }
    case 2:
      return { op: "delete", key: pick() }
    case 3:
      return { op: "casDelete", key: pick(), when: { target: "version", cmp: "==", value: 2 } }
    default:
      return {
        op: "txn",
        key: "k",
        compare: random.chance(0.7) ? [] : [{ key: "k", target: "value", cmp: "<", value: "m" }],
        success: Array.from({ length: random.int(random.chance(0.2) ? 300 : 20) }, (_, i) => ({
          op: "put" as const,
          key: `key${i}`,
          value: "v".repeat(random.int(120)),
        })),
        failure: [{ op: "delete", key: "k" }],
      }
  }
}

const randomCommand = (random: SeededRandom): ShardCommand => {
  const command: KvCommand = {
    clientId: 1 + random.int(2 ** 31) * 2 ** 21,
    seq: 1 + random.int(1_000),
    ackedBelow: 1,
    nowMs: random.chance(0.1) ? random.next() * 1e6 : 1.7e12 + random.int(1e9),
    op: randomOp(random),
  }
  switch (random.int(8)) {
    case 0:
      return { type: "deleteShard", configNum: 1 + random.int(9), shard: random.int(10) }
    case 1:
      return { type: "gcDone", configNum: 1 + random.int(9), shard: random.int(10) }
    case 2:
      return { type: "incarnate", incarnation: "inc-1" }
    default:
      return { type: "client", command }
  }
}

const damaged = (random: SeededRandom, bytes: Uint8Array): Uint8Array => {
  switch (random.int(3)) {
    case 0:
      return bytes.slice(0, random.int(bytes.length))
    case 1:
      return Uint8Array.from([...bytes, random.int(256)])
    default: {
      const copy = bytes.slice()
      // The first bytes (the wrapper's head) half the time, anywhere the other half.
      const span = random.chance(0.5) ? Math.min(8, copy.length) : copy.length
      for (let n = 1 + random.int(2); n > 0; n--) copy[random.int(span)] = random.int(256)
      return copy
    }
  }
}

test("a shard group's entries decode the same read in place as through the generic decoder", () => {
  const seed = seedFromEnv()
  console.log(`shard command decode: seed ${seed} (replay: KV_SEED=${seed})`)
  const random = new SeededRandom(seed)
  let clientWrites = 0
  let damagedDecoded = 0
  for (let i = 0; i < 4_000; i++) {
    const command = randomCommand(random)
    const encoded = encodeShardCommand(command)
    const bytes = random.chance(0.5) ? encoded : damaged(random, encoded)
    const decoded = decodeShardCommand(bytes)
    expect(Bun.deepEquals(decoded, decodeShardCommandFields(bytes), true)).toBe(true)
    if (bytes === encoded) expect(decoded).toEqual(command)
    if (decoded?.type === "client") clientWrites++
    if (bytes !== encoded && decoded !== undefined) damagedDecoded++
  }
  console.log(`shard command decode: ${clientWrites} client writes, ${damagedDecoded} damaged entries still decoded`)
  expect(clientWrites).toBeGreaterThan(1_000)
  expect(damagedDecoded).toBeGreaterThan(20)
}, 60_000)
