/**
 * Proves that the hand-written envelope check (checkedEnvelope in envelope.ts) never accepts what
 * the envelope Schema refuses and gives what it gives: envelopes of every kind, each mutated at
 * random (a field dropped, added or of another type, a wrong version or kind, non-integer and
 * unsafe ids). Replay with KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { Schema } from "effect"
import { checkedEnvelope, EnvelopeSchema } from "../src/envelope.ts"
import { SeededRandom, seedFromEnv } from "../src/index.ts"

const bySchema = Schema.decodeUnknownExit(EnvelopeSchema)

const oddValue = (random: SeededRandom): unknown =>
  [
    0,
    1,
    -1,
    1.5,
    Number.NaN,
    2 ** 53,
    2 ** 40,
    "",
    "kv.get",
    null,
    undefined,
    true,
    [],
    {},
    new Uint8Array(3),
    { ok: true },
  ][random.int(16)]

const validEnvelope = (random: SeededRandom): unknown[] => {
  const id = random.chance(0.5) ? random.int(1000) : 2 ** 40 + random.int(1000)
  switch (random.int(6)) {
    case 0:
      return [1, 0, id, "kv.command", { op: "put" }]
    case 1:
      return [1, 1, id, { ok: true }]
    case 2:
      return [1, 2, id, "WrongLeader", "message"]
    case 3:
      return [1, 3, "raft", [{ type: "Heartbeat" }]]
    case 4:
      return [1, 4, id, new Uint8Array(16)]
    default:
      return [1, 5, id, "kv.get", { key: "k" }, new Uint8Array(16)]
  }
}

const mutate = (random: SeededRandom, envelope: unknown[]): unknown => {
  const out = [...envelope]
  const times = random.int(3)
  for (let n = 0; n < times; n++) {
    switch (random.int(4)) {
      case 0:
        out[random.int(out.length)] = oddValue(random)
        break
      case 1:
        out.pop()
        break
      case 2:
        out.push(oddValue(random))
        break
      default:
        out[1] = random.int(7)
    }
  }
  return random.chance(0.02) ? { ...out } : out
}

test("the hand-written envelope check accepts only what the Schema accepts, and gives what it gives", () => {
  const seed = seedFromEnv()
  console.log(`envelope check: seed ${seed} (replay: KV_SEED=${seed})`)
  const random = new SeededRandom(seed)
  let fast = 0
  const differences: string[] = []
  for (let i = 0; i < 30_000; i++) {
    const raw = mutate(random, validEnvelope(random))
    const checked = checkedEnvelope(raw)
    if (checked === undefined) continue
    fast++
    const exit = bySchema(raw)
    const expected = exit._tag === "Success" ? exit.value : "refused"
    if (!Bun.deepEquals(checked, expected, true) || checked === raw) {
      if (differences.length < 5)
        differences.push(`${Bun.inspect(raw)}: ${Bun.inspect(checked)} vs ${Bun.inspect(expected)}`)
    }
  }
  expect(differences).toEqual([])
  expect(fast).toBeGreaterThan(5_000)
})
