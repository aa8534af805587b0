/**
 * Proves that Raft batches decode the same with the hand-written checks for replication traffic
 * (wire.ts) as with the message Schema alone: batches of every message type, each message mutated
 * at random (a field dropped, added or of another type, numbers past the bounds, configuration
 * entries, data that is not bytes). The checks must also take the replication messages themselves.
 * Replay with KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { mutateFields } from "@kv/sim"
import { MAX_TERM_OR_INDEX, type Message } from "../src/core/index.ts"
import { decodeMessages, decodeMessagesBySchema, replicationBatch } from "../src/node/wire.ts"

type Fields = Record<string, unknown>

const oddValue = (random: SeededRandom): unknown =>
  [
    0,
    7,
    -1,
    1.5,
    Number.NaN,
    MAX_TERM_OR_INDEX,
    MAX_TERM_OR_INDEX + 1,
    "",
    "Append",
    null,
    undefined,
    true,
    [],
    {},
    new Uint8Array(2),
    Buffer.from([1, 2]),
  ][random.int(16)]

const header = { from: 1, to: 2, term: 5 }
const membership = { members: [{ id: 1, role: "voter", address: "127.0.0.1:7001" }] }

const entries = (random: SeededRandom): Fields[] =>
  Array.from({ length: random.int(4) }, (_, i) =>
    random.chance(0.1)
      ? { term: 5, index: 10 + i, data: new Uint8Array(0), config: membership }
      : { term: 5, index: 10 + i, data: random.chance(0.5) ? new Uint8Array(random.int(50)) : Buffer.alloc(3) },
  )

const message = (random: SeededRandom): Fields =>
  [
    () => ({ type: "Append", ...header, prevIndex: 9, prevTerm: 5, entries: entries(random), commit: 8 }),
    () => ({ type: "AppendResp", ...header, index: 12, reject: random.chance(0.5), conflictTerm: 0, conflictIndex: 0 }),
    () => ({
      type: "Heartbeat",
      ...header,
      commit: 8,
      context: random.int(3),
      ...(random.chance(0.8) ? { commitTerm: 4 } : {}),
      ...(random.chance(0.3) ? { replaying: true } : {}),
    }),
    () => ({ type: "HeartbeatResp", ...header, context: 2 }),
    () => ({ type: "Vote", ...header, lastLogIndex: 3, lastLogTerm: 2, transfer: false }),
    () => ({ type: "PreVoteResp", ...header, reject: true }),
    () => ({ type: "TimeoutNow", ...header }),
    () => ({
      type: "PreVote",
      ...header,
      lastLogIndex: 3,
      lastLogTerm: 2,
      ...(random.chance(0.5) ? { backlog: random.int(1 << 30) } : {}),
    }),
  ][random.int(8)]!()

const FIELDS = [
  "type",
  "from",
  "to",
  "term",
  "prevIndex",
  "prevTerm",
  "entries",
  "commit",
  "index",
  "context",
  "commitTerm",
  "replaying",
  "backlog",
  "config",
]

/** Drops, replaces or adds fields of the message, and now and then of one of its entries. */
const mutate = (random: SeededRandom, value: Fields): Fields =>
  mutateFields(random, value, {
    fields: FIELDS,
    oddValue,
    nested: (out, mutateOne) => {
      if (Array.isArray(out.entries) && out.entries.length > 0 && random.chance(0.4)) {
        const list = [...(out.entries as Fields[])]
        const at = random.int(list.length)
        list[at] = mutateOne(list[at]!) as Fields
        out.entries = list
      }
    },
  })

/** Same messages, fields in the same order, data the very bytes that came in. */
const same = (a: readonly unknown[] | undefined, b: readonly unknown[] | undefined): boolean => {
  if (a === undefined || b === undefined) return a === b
  const dataOf = (batch: readonly unknown[]) =>
    batch.flatMap((m) => ((m as Fields).entries as Fields[] | undefined)?.map((e) => e.data) ?? [])
  const da = dataOf(a)
  const db = dataOf(b)
  return (
    Bun.deepEquals(a, b, true) &&
    JSON.stringify(a) === JSON.stringify(b) &&
    da.length === db.length &&
    da.every((d, i) => d === db[i])
  )
}

test("a Raft batch decodes the same through the replication checks as through the Schema alone", () => {
  const seed = seedFromEnv()
  console.log(`raft wire checks: seed ${seed} (replay: KV_SEED=${seed})`)
  const random = new SeededRandom(seed)
  let accepted = 0
  const differences: string[] = []
  for (let i = 0; i < 20_000; i++) {
    const batch = Array.from({ length: 1 + random.int(3) }, () =>
      random.chance(0.3) ? message(random) : mutate(random, message(random)),
    )
    const payload: unknown = random.chance(0.02) ? { ...batch } : batch
    const actual = decodeMessages(payload)
    const expected = decodeMessagesBySchema(payload)
    if (actual !== undefined) accepted++
    if (!same(actual, expected) && differences.length < 5) {
      differences.push(`${Bun.inspect(payload, { depth: 5 })}: ${Bun.inspect(actual)} vs ${Bun.inspect(expected)}`)
    }
  }
  expect(differences).toEqual([])
  expect(accepted).toBeGreaterThan(2_000)
})

test("replication messages are taken by the hand-written checks, not the Schema", () => {
  const batch = [
    {
      type: "Append",
      ...header,
      prevIndex: 9,
      prevTerm: 5,
      entries: [{ term: 5, index: 10, data: new Uint8Array(8) }],
      commit: 8,
    },
    { type: "AppendResp", ...header, index: 12, reject: false, conflictTerm: 0, conflictIndex: 0 },
    { type: "Heartbeat", ...header, commit: 8, context: 0 },
    { type: "Heartbeat", ...header, commit: 8, context: 0, commitTerm: 5, replaying: true },
    { type: "HeartbeatResp", ...header, context: 2 },
  ]
  expect(replicationBatch(batch)?.length).toBe(batch.length)
  expect(replicationBatch(batch)).toEqual(decodeMessagesBySchema(batch) as Message[])
})

test("a pre-vote carries its candidate's backlog, a count of bytes, or none", () => {
  const preVote = { type: "PreVote", ...header, lastLogIndex: 3, lastLogTerm: 2 }
  expect(decodeMessages([{ ...preVote, backlog: 21 << 20 }])).toEqual([{ ...preVote, backlog: 21 << 20 }] as Message[])
  expect(decodeMessages([preVote])).toEqual([preVote] as Message[])
  expect(decodeMessages([{ ...preVote, backlog: -1 }])).toBeUndefined()
  expect(decodeMessages([{ ...preVote, backlog: 1.5 }])).toBeUndefined()
})
