/**
 * Proves that the kv.command and kv.get methods, with their hand-written checks in front of the
 * Schemas (fastDecoders.ts), decode exactly what the Schemas alone decode: requests and replies of
 * every kind, each mutated at random (a field dropped, added or of another type, leases, conditional
 * answers, other errors). The checks must also take the common shapes themselves. Replay with
 * KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { mutateFields, mutateOp } from "@kv/sim"
import { Schema } from "effect"
import { fastCommandReply, fastCommandRequest, fastGetReply, fastGetRequest } from "../src/fastDecoders.ts"
import { CommandReply, CommandRequest, GetReply, GetRequest, KvCommandMethod, KvGetMethod } from "../src/protocol.ts"

type Fields = Record<string, unknown>

const oddValue = (random: SeededRandom): unknown =>
  [0, 1, -1, 1.5, Number.NaN, 2 ** 53, 2 ** 52, "", "k", null, undefined, true, false, [], {}, new Uint8Array(2)][
    random.int(16)
  ]

const entry = { value: "v", version: 1, modRevision: 2, createRevision: 2 }

const requests = (random: SeededRandom): Fields => {
  const op: Fields = [
    { op: "put", key: "k", value: "v" },
    { op: "put", key: "k", value: "v", lease: 3 },
    { op: "append", key: "k", value: "w" },
    { op: "delete", key: "k" },
    { op: "casDelete", key: "k", when: { target: "version", cmp: "==", value: 1 } },
    { op: "leaseRevoke", key: "", lease: 2 },
  ][random.int(6)]!
  return { clientId: random.chance(0.5) ? 2 ** 52 + random.int(100) : 1 + random.int(100), seq: 1, ackedBelow: 1, op }
}

const commandReplies = (random: SeededRandom): Fields =>
  [
    { ok: true },
    { ok: true, reply: { kind: "cas", applied: true, revision: 3, entry } },
    { ok: true, reply: { kind: "lease", lease: 1, ttlMs: 1000 } },
    { ok: false, error: "WrongLeader", leaderHint: "127.0.0.1:7001" },
    { ok: false, error: "SessionExpired", message: "gone" },
  ][random.int(5)]!

const getReplies = (random: SeededRandom): Fields =>
  [
    { ok: true, value: "v".repeat(random.int(200)) },
    { ok: false, error: "WrongLeader", leaderHint: "" },
    { ok: false, error: "Stale", message: "m" },
  ][random.int(3)]!

const FIELDS = ["ok", "value", "key", "op", "error", "leaderHint", "reply", "lease", "clientId", "seq", "ackedBelow"]

/** Drops, replaces or adds fields, at the top or in the nested op; now and then wraps it in an array. */
const mutate = (random: SeededRandom, value: Fields): unknown => {
  const out = mutateFields(random, value, { fields: FIELDS, oddValue, nested: mutateOp(random) })
  return random.chance(0.02) ? [out] : out
}

const check = <A>(
  name: string,
  generate: (random: SeededRandom) => Fields,
  withFast: (input: unknown) => A | undefined,
  fast: (input: unknown) => unknown,
  schema: Schema.Decoder<A>,
) => {
  test(`${name} decodes exactly what its Schema decodes`, () => {
    const seed = seedFromEnv()
    console.log(`${name}: seed ${seed} (replay: KV_SEED=${seed})`)
    const random = new SeededRandom(seed)
    const bySchema = Schema.decodeUnknownExit(schema)
    let fastTaken = 0
    const differences: string[] = []
    for (let i = 0; i < 20_000; i++) {
      const input = random.chance(0.2) ? generate(random) : mutate(random, generate(random))
      if (fast(input) !== undefined) fastTaken++
      const exit = bySchema(input)
      const expected = exit._tag === "Success" ? exit.value : undefined
      const actual = withFast(input)
      // Same fields in the same order, a fresh object as the Schema gives.
      const same =
        Bun.deepEquals(actual, expected, true) &&
        JSON.stringify(actual) === JSON.stringify(expected) &&
        (actual === undefined || actual !== input)
      if (!same && differences.length < 5) {
        differences.push(`${Bun.inspect(input)}: ${Bun.inspect(actual)} vs ${Bun.inspect(expected)}`)
      }
    }
    expect(differences).toEqual([])
    expect(fastTaken).toBeGreaterThan(2_000)
  })
}

check("kv.command request", requests, KvCommandMethod.decodeRequest, fastCommandRequest, CommandRequest)
check("kv.command reply", commandReplies, KvCommandMethod.decodeResponse, fastCommandReply, CommandReply)
check("kv.get request", () => ({ key: "k" }), KvGetMethod.decodeRequest, fastGetRequest, GetRequest)
check("kv.get reply", getReplies, KvGetMethod.decodeResponse, fastGetReply, GetReply)
