/**
 * Proves that a shard's watch history moves with the shard (split into install pieces like the rest
 * of its data): the new owner answers a watcher from the revision it had reached, with the same
 * events; and that shard data from before the history existed installs with an empty history
 * compacted at its revision.
 */
import { describe, expect, test } from "bun:test"
import { answerPoll, type KvCommand, type KvOp, type WatchPollRequest } from "@kv/kvraft"
import { type Config, type Gid, makeConfig, shardOf } from "@kv/shardctrler"
import { Encoder } from "@msgpack/msgpack"
import { crc32 } from "../src/stateMachine/crc32.ts"
import { type ShardCommand, ShardStateMachine } from "../src/stateMachine/index.ts"

const N_SHARDS = 10
const allOn = (num: number, gid: Gid): Config =>
  makeConfig(num, new Array(N_SHARDS).fill(gid), new Map([[gid, [`g${gid}-0`]]]))

const command = (seq: number, op: KvOp): ShardCommand => ({
  type: "client",
  command: { clientId: 9, seq, ackedBelow: seq, nowMs: 1_000, op } satisfies KvCommand,
})

/** The shard's bytes as install pieces of at most `pieceBytes`. */
const pieces = (configNum: number, shard: number, bytes: Uint8Array, pieceBytes: number): ShardCommand[] => {
  const out: ShardCommand[] = []
  for (let offset = 0; offset < bytes.length; offset += pieceBytes) {
    out.push({
      type: "installPiece",
      configNum,
      shard,
      offset,
      total: bytes.length,
      checksum: crc32(bytes),
      bytes: bytes.subarray(offset, offset + pieceBytes),
    })
  }
  return out
}

const poll = (key: string, afterRevision: number, shard: number): WatchPollRequest => ({
  watcher: 1,
  poll: 1,
  key,
  prefix: true,
  afterRevision,
  shard,
})

describe("a shard's watch history", () => {
  test("moves with the shard in pieces: the new owner answers from where the old one was", () => {
    const a = new ShardStateMachine({ gid: 100, nShards: N_SHARDS })
    const b = new ShardStateMachine({ gid: 200, nShards: N_SHARDS })
    a.apply({ type: "reconfigure", config: allOn(1, 100) })
    b.apply({ type: "reconfigure", config: allOn(1, 100) })
    const shard = shardOf("{t}", N_SHARDS)
    for (let i = 1; i <= 40; i++) {
      a.apply(
        command(
          i,
          i % 5 === 0 ? { op: "delete", key: `{t}.${i % 3}` } : { op: "put", key: `{t}.${i % 3}`, value: `v${i}` },
        ),
      )
    }
    const before = a.servingStore(shard)!
    const beforeEvents = before.history.all()
    expect(beforeEvents.length).toBe(before.revision)

    a.apply({ type: "reconfigure", config: allOn(2, 200) })
    b.apply({ type: "reconfigure", config: allOn(2, 200) })
    const handOff = a.handOff(2, shard)
    if (handOff.kind !== "data") throw new Error(`no data: ${handOff.kind}`)
    const split = pieces(2, shard, handOff.bytes, 64)
    expect(split.length).toBeGreaterThan(3)
    for (const piece of split) expect(b.apply(piece)).toEqual({ ok: true })

    const after = b.servingStore(shard)!
    expect(after.history.all()).toEqual(beforeEvents)
    expect(after.history.compactRevision).toBe(0)
    // A watcher that had reached revision 30 at the old owner continues at the new one.
    expect(answerPoll(after, poll("{t}.", 30, shard))).toEqual(answerPoll(before, poll("{t}.", 30, shard)))
    b.apply(command(41, { op: "put", key: "{t}.9", value: "at the new owner" }))
    const next = answerPoll(after, poll("{t}.", 34, shard))
    expect(next.ok && next.events.map((e) => e.modRevision).at(-1)).toBe(after.revision)
    expect(a.servingStore(shard)).toBeUndefined()
  })

  test("shard data from before the history existed installs compacted at its revision", () => {
    const b = new ShardStateMachine({ gid: 200, nShards: N_SHARDS })
    b.apply({ type: "reconfigure", config: allOn(1, 100) })
    b.apply({ type: "reconfigure", config: allOn(2, 200) })
    const shard = shardOf("{t}", N_SHARDS)
    // A KvStateMachine snapshot of version 2: [2, [key, value, create, mod, version, ...], sessions, revision].
    const old = new Encoder().encode([2, ["{t}.0", "old", 3, 12, 4], [0, []], 12])
    for (const piece of pieces(2, shard, old, 16)) expect(b.apply(piece)).toEqual({ ok: true })
    const store = b.servingStore(shard)!
    expect(store.history.compactRevision).toBe(12)
    expect(answerPoll(store, poll("{t}.", 11, shard))).toEqual({
      ok: false,
      error: "Compacted",
      compactRevision: 12,
      revision: 12,
    })
    b.apply(command(1, { op: "put", key: "{t}.0", value: "new" }))
    expect(answerPoll(store, poll("{t}.", 12, shard))).toEqual({
      ok: true,
      events: [{ type: "put", key: "{t}.0", value: "new", modRevision: 13, createRevision: 3, version: 5 }],
      revision: 13,
    })
  })
})
