/**
 * Proves that keys sharing a hash tag share a shard (keys without one hash as before), that a
 * shard group refuses a transaction spanning shards before writing anything, that a shard's
 * revisions and a conditional write's answer move with the shard, and that shard data from before
 * revisions existed still installs.
 */
import { describe, expect, test } from "bun:test"
import type { KvCommand, KvOp } from "@kv/kvraft"
import { type Config, type Gid, hashTagOf, makeConfig, shardOf } from "@kv/shardctrler"
import { Encoder } from "@msgpack/msgpack"
import { crc32 } from "../src/stateMachine/crc32.ts"
import { type ShardCommand, ShardStateMachine } from "../src/stateMachine/index.ts"

const N_SHARDS = 10
const servers = (gid: Gid) => [`g${gid}-0`]
const config = (num: number, shards: readonly Gid[]): Config => {
  const gids = [...new Set(shards)].filter((g) => g !== 0)
  return makeConfig(num, shards, new Map(gids.map((g) => [g, servers(g)])))
}
const allOn = (num: number, gid: Gid) => config(num, new Array(N_SHARDS).fill(gid))

const command = (seq: number, op: KvOp): ShardCommand => ({
  type: "client",
  command: { clientId: 9, seq, ackedBelow: seq, nowMs: 1_000, op } satisfies KvCommand,
})

const wholeShard = (configNum: number, shard: number, bytes: Uint8Array): ShardCommand => ({
  type: "installPiece",
  configNum,
  shard,
  offset: 0,
  total: bytes.length,
  checksum: crc32(bytes),
  bytes,
})

describe("hash tags", () => {
  test("keys without a hash tag hash exactly as before (FNV-1a of the whole key)", () => {
    expect(shardOf("", 10)).toBe(0x811c9dc5 % 10)
    expect(shardOf("a", 1 << 30)).toBe(0xe40c292c % (1 << 30))
    expect(shardOf("foobar", 1 << 30)).toBe(0xbf9cf968 % (1 << 30))
    // Braces that make no tag (empty, or not closed) leave the whole key hashed.
    for (const key of ["a{}b", "{}", "a{b", "}a{", "x}y{"]) expect(hashTagOf(key)).toBe(key)
  })

  test("the text inside the first {...} decides the shard", () => {
    expect(hashTagOf("{user42}.name")).toBe("user42")
    expect(hashTagOf("x{a}{b}")).toBe("a")
    expect(hashTagOf("{{a}}")).toBe("{a")
    expect(shardOf("{foobar}.x", 1 << 30)).toBe(shardOf("foobar", 1 << 30))
    for (let i = 0; i < 100; i++) {
      expect(shardOf(`{user${i}}.name`, N_SHARDS)).toBe(shardOf(`prefix{user${i}}.email`, N_SHARDS))
    }
  })
})

describe("coordination in a shard group", () => {
  const tagged = (i: number) => `{t}.${i}`

  test("a transaction over keys of two shards is refused before anything is written", () => {
    const m = new ShardStateMachine({ gid: 100, nShards: N_SHARDS })
    m.apply({ type: "reconfigure", config: allOn(1, 100) })
    let other = "k0"
    for (let i = 0; shardOf(other, N_SHARDS) === shardOf("a", N_SHARDS); i++) other = `k${i}`
    const op: KvOp = {
      op: "txn",
      key: "a",
      compare: [],
      success: [
        { op: "put", key: "a", value: "1" },
        { op: "put", key: other, value: "2" },
      ],
      failure: [],
    }
    expect(m.precheck(op)).toMatchObject({ ok: false, error: "CrossShard" })
    expect(m.apply(command(1, op))).toMatchObject({ ok: false, error: "CrossShard" })
    expect(m.get("a")).toEqual({ ok: true, value: "" })
    expect(m.get(other)).toEqual({ ok: true, value: "" })
    // Keys sharing a tag are one shard's, wherever the tag sits in the key.
    const together: KvOp = { ...op, key: tagged(1), success: [{ op: "put", key: `x${tagged(2)}`, value: "v" }] }
    // The refusal recorded nothing, so seq 1 is still free whichever shard the tag names.
    expect(m.apply(command(1, together))).toMatchObject({ ok: true, reply: { kind: "txn", succeeded: true } })
  })

  test("leases are refused with a clear error, and a put naming one writes nothing", () => {
    const m = new ShardStateMachine({ gid: 100, nShards: N_SHARDS })
    m.apply({ type: "reconfigure", config: allOn(1, 100) })
    const refused: KvOp[] = [
      { op: "leaseGrant", key: "", ttlMs: 5_000 },
      { op: "leaseKeepAlive", key: "", lease: 1 },
      { op: "leaseRevoke", key: "", lease: 1 },
      { op: "put", key: "a", value: "1", lease: 1 },
      { op: "casPut", key: "a", value: "1", when: { target: "version", cmp: "==", value: 0 }, lease: 1 },
      { op: "txn", key: "a", compare: [], success: [{ op: "put", key: "a", value: "1", lease: 1 }], failure: [] },
    ]
    refused.forEach((op, k) => {
      expect(m.precheck(op)).toMatchObject({ ok: false, error: "InvalidRequest" })
      expect(m.apply(command(k + 1, op))).toMatchObject({ ok: false, error: "InvalidRequest" })
    })
    expect(m.get("a")).toEqual({ ok: true, value: "" })
  })

  test("a shard's revisions and a CAS answer move with the shard, and go on growing there", () => {
    const a = new ShardStateMachine({ gid: 100, nShards: N_SHARDS })
    const b = new ShardStateMachine({ gid: 200, nShards: N_SHARDS })
    a.apply({ type: "reconfigure", config: allOn(1, 100) })
    b.apply({ type: "reconfigure", config: allOn(1, 100) })
    const shard = shardOf(tagged(0), N_SHARDS)
    for (let i = 0; i < 5; i++) a.apply(command(i + 1, { op: "put", key: tagged(i), value: `${i}` }))
    const cas = command(6, {
      op: "casPut",
      key: tagged(0),
      value: "mine",
      when: { target: "version", cmp: "==", value: 1 },
    })
    const first = a.apply(cas)
    expect(first).toEqual({ ok: true, reply: { kind: "cas", applied: true, revision: 6 } })

    const moved = allOn(2, 200)
    a.apply({ type: "reconfigure", config: moved })
    b.apply({ type: "reconfigure", config: moved })
    const handOff = a.handOff(2, shard)
    if (handOff.kind !== "data") throw new Error(`no data: ${handOff.kind}`)
    expect(b.apply(wholeShard(2, shard, handOff.bytes))).toEqual({ ok: true })

    expect(b.read({ read: "entry", key: tagged(0) })).toEqual({
      ok: true,
      entry: { value: "mine", version: 2, modRevision: 6, createRevision: 1 },
    })
    // The retried CAS gets its first answer at the new owner.
    expect(b.apply(cas)).toEqual(first)
    // The next write continues the shard's counter instead of starting again.
    b.apply(command(7, { op: "put", key: tagged(1), value: "again" }))
    expect(b.read({ read: "entry", key: tagged(1) })).toMatchObject({ entry: { modRevision: 7, version: 2 } })
    expect(b.read({ read: "list", prefix: "{t}.", limit: 2, keysOnly: true })).toEqual({
      ok: true,
      entries: [
        { key: "{t}.0", version: 2, modRevision: 6, createRevision: 1 },
        { key: "{t}.1", version: 2, modRevision: 7, createRevision: 2 },
      ],
      more: true,
      revision: 7,
    })
    // The old owner serves the shard no more.
    expect(a.read({ read: "entry", key: tagged(0) })).toMatchObject({ ok: false, error: "WrongGroup" })
  })

  test("shard data written before revisions existed installs, as keys written once at revision 1", () => {
    const b = new ShardStateMachine({ gid: 200, nShards: N_SHARDS })
    b.apply({ type: "reconfigure", config: allOn(1, 100) })
    b.apply({ type: "reconfigure", config: allOn(2, 200) })
    const shard = shardOf(tagged(0), N_SHARDS)
    // A KvStateMachine snapshot of version 1: [1, [key, value, ...], sessions].
    const old = new Encoder().encode([1, [tagged(0), "old", tagged(1), "older"], [0, []]])
    expect(b.apply(wholeShard(2, shard, old))).toEqual({ ok: true })
    expect(b.read({ read: "entry", key: tagged(1) })).toEqual({
      ok: true,
      entry: { value: "older", version: 1, modRevision: 1, createRevision: 1 },
    })
    b.apply(command(1, { op: "put", key: tagged(0), value: "new" }))
    expect(b.read({ read: "entry", key: tagged(0) })).toMatchObject({ entry: { version: 2, modRevision: 2 } })
  })
})
