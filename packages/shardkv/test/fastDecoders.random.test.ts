/**
 * Proves that shardkv.command and shardkv.get, which put kvraft's hand-written checks in front of
 * their own Schemas (whose unions add WrongGroup), decode exactly what those Schemas alone decode:
 * requests and replies of every kind, WrongGroup included, each mutated at random. Replay with
 * KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { mutateFields, mutateOp } from "@kv/sim"
import { Schema } from "effect"
import { ShardCommandReply, ShardGetReply, ShardKvCommandMethod, ShardKvGetMethod } from "../src/protocol.ts"

type Fields = Record<string, unknown>

const odd: readonly unknown[] = [0, 1, -1, 1.5, Number.NaN, 2 ** 53, "", "k", null, undefined, true, false, [], {}]
const FIELDS = ["ok", "value", "key", "op", "error", "leaderHint", "message", "reply", "clientId", "seq", "ackedBelow"]
const entry = { value: "v", version: 1, modRevision: 2, createRevision: 2 }
const wrongGroup = { ok: false, error: "WrongGroup", message: "shard 3 is served by group 101" }

const generators: Record<string, (random: SeededRandom) => Fields> = {
  "command request": (random) => ({
    clientId: 1 + random.int(2 ** 20),
    seq: 1 + random.int(5),
    ackedBelow: 1,
    op: [
      { op: "put", key: "k", value: "v" },
      { op: "put", key: "k", value: "v", lease: 3 },
      { op: "append", key: "k", value: "w" },
      { op: "delete", key: "k" },
      { op: "casDelete", key: "k", when: { target: "version", cmp: "==", value: 1 } },
    ][random.int(5)],
  }),
  "command reply": (random) =>
    [
      { ok: true },
      { ok: true, reply: { kind: "cas", applied: true, revision: 3, entry } },
      { ok: false, error: "WrongLeader", leaderHint: "127.0.0.1:7001" },
      wrongGroup,
      { ok: false, error: "SessionExpired", message: "gone" },
    ][random.int(5)]!,
  "get request": () => ({ key: "k" }),
  "get reply": (random) =>
    [
      { ok: true, value: "v".repeat(random.int(50)) },
      { ok: false, error: "WrongLeader", leaderHint: "" },
      wrongGroup,
      { ok: false, error: "Stale", message: "m" },
    ][random.int(4)]!,
}

const mutate = (random: SeededRandom, value: Fields): unknown =>
  mutateFields(random, value, { fields: FIELDS, oddValue: (r) => odd[r.int(odd.length)], nested: mutateOp(random) })

const cases: readonly [string, (input: unknown) => unknown, Schema.Decoder<unknown>][] = [
  ["command request", ShardKvCommandMethod.decodeRequest, ShardKvCommandMethod.request],
  ["command reply", ShardKvCommandMethod.decodeResponse, ShardCommandReply],
  ["get request", ShardKvGetMethod.decodeRequest, ShardKvGetMethod.request],
  ["get reply", ShardKvGetMethod.decodeResponse, ShardGetReply],
]

for (const [name, decode, schema] of cases) {
  test(`shardkv ${name}: the method decodes exactly what its Schema decodes`, () => {
    const seed = seedFromEnv()
    console.log(`shardkv ${name}: seed ${seed} (replay: KV_SEED=${seed})`)
    const random = new SeededRandom(seed)
    const bySchema = Schema.decodeUnknownExit(schema)
    const generate = generators[name]!
    const differences: string[] = []
    let accepted = 0
    for (let i = 0; i < 10_000; i++) {
      const input = random.chance(0.3) ? generate(random) : mutate(random, generate(random))
      const exit = bySchema(input)
      const expected = exit._tag === "Success" ? exit.value : undefined
      const actual = decode(input)
      if (actual !== undefined) accepted++
      const same = Bun.deepEquals(actual, expected, true) && JSON.stringify(actual) === JSON.stringify(expected)
      if (!same && differences.length < 5) {
        differences.push(`${Bun.inspect(input)}: ${Bun.inspect(actual)} vs ${Bun.inspect(expected)}`)
      }
    }
    expect(differences).toEqual([])
    expect(accepted).toBeGreaterThan(1_000)
  }, 30_000)
}
