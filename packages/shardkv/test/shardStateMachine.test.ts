/** The pure shard-group state machine: every apply rule, snapshots, and determinism. */
import { describe, expect, test } from "bun:test"
import type { KvCommand, KvOp } from "@kv/kvraft"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { type Config, type Gid, makeConfig, shardOf } from "@kv/shardctrler"
import { crc32 } from "../src/stateMachine/crc32.ts"
import {
  decodeShardCommand,
  encodeShardCommand,
  type ShardCommand,
  ShardStateMachine,
} from "../src/stateMachine/index.ts"

const N_SHARDS = 10
const servers = (gid: Gid) => [`g${gid}-0`, `g${gid}-1`, `g${gid}-2`]

const config = (num: number, shards: readonly Gid[]): Config => {
  const gids = [...new Set(shards)].filter((g) => g !== 0)
  return makeConfig(num, shards, new Map(gids.map((g) => [g, servers(g)])))
}

/** All shards on `gid`. */
const allOn = (num: number, gid: Gid) => config(num, new Array(N_SHARDS).fill(gid))
/** Shards 0-4 on `a`, 5-9 on `b`. */
const split = (num: number, a: Gid, b: Gid) => config(num, [a, a, a, a, a, b, b, b, b, b])

/** One key per shard, found by search since shardOf is a hash. */
const keyOf: string[] = (() => {
  const keys = new Array<string>(N_SHARDS)
  let found = 0
  for (let i = 0; found < N_SHARDS; i++) {
    const shard = shardOf(`k${i}`, N_SHARDS)
    if (keys[shard] === undefined) {
      keys[shard] = `k${i}`
      found++
    }
  }
  return keys
})()

const machine = (gid: Gid = 100) => new ShardStateMachine({ gid, nShards: N_SHARDS })

const reconfigure = (m: ShardStateMachine, c: Config) => m.apply({ type: "reconfigure", config: c })

/** A client whose seq numbers are per shard, as the clerk keeps them. */
const clerk = (clientId = 7, nowMs = 1_000) => {
  const seqs = new Map<number, number>()
  return (op: KvOp): KvCommand => {
    const shard = shardOf(op.key, N_SHARDS)
    const seq = (seqs.get(shard) ?? 0) + 1
    seqs.set(shard, seq)
    return { clientId, seq, ackedBelow: seq, nowMs, op }
  }
}

const write = (m: ShardStateMachine, command: KvCommand) => m.apply({ type: "client", command })

/** The whole of a pulled shard as one InstallPiece, checksummed as a puller sends it. */
const wholeShard = (configNum: number, shard: number, bytes: Uint8Array): ShardCommand => ({
  type: "installPiece",
  configNum,
  shard,
  offset: 0,
  total: bytes.length,
  checksum: crc32(bytes),
  bytes,
})

/** Moves `shard` from `from` to `to` through the full protocol; both at `c` afterwards. */
const migrate = (from: ShardStateMachine, to: ShardStateMachine, c: Config, shard: number) => {
  const handOff = from.handOff(c.num, shard)
  if (handOff.kind !== "data") throw new Error(`no data for shard ${shard}: ${handOff.kind}`)
  expect(to.apply(wholeShard(c.num, shard, handOff.bytes))).toEqual({ ok: true })
  expect(from.apply({ type: "deleteShard", configNum: c.num, shard })).toEqual({ ok: true })
  expect(to.apply({ type: "gcDone", configNum: c.num, shard })).toEqual({ ok: true })
}

describe("configuration changes (Reconfigure)", () => {
  test("a new group starts in configuration 0 with every shard absent", () => {
    const m = machine()
    expect(m.config.num).toBe(0)
    expect(m.shardStates()).toEqual(new Array(N_SHARDS).fill("Absent"))
    expect(m.canReconfigure()).toBe(true)
    expect(m.get(keyOf[0]!)).toMatchObject({ ok: false, error: "WrongGroup" })
  })

  test("shards that came from no group (gid 0) serve at once, empty", () => {
    const m = machine()
    expect(reconfigure(m, split(1, 100, 101))).toEqual({ ok: true })
    expect(m.shardStates()).toEqual([...new Array(5).fill("Serving"), ...new Array(5).fill("Absent")])
    const ck = clerk()
    expect(write(m, ck({ op: "put", key: keyOf[0]!, value: "a" }))).toEqual({ ok: true })
    expect(m.get(keyOf[0]!)).toEqual({ ok: true, value: "a" })
    expect(m.get(keyOf[1]!)).toEqual({ ok: true, value: "" })
    expect(m.pulls()).toEqual([])
  })

  test("only the next configuration applies; duplicates and skips are ignored", () => {
    const m = machine()
    expect(reconfigure(m, allOn(2, 100))).toMatchObject({ ok: false, error: "Ignored" })
    expect(reconfigure(m, allOn(1, 100))).toEqual({ ok: true })
    expect(reconfigure(m, allOn(1, 100))).toMatchObject({ ok: false, error: "Ignored" })
    expect(m.config.num).toBe(1)
  })

  test("a configuration with the wrong number of shards is ignored", () => {
    const m = machine()
    expect(reconfigure(m, config(1, [100, 100]))).toMatchObject({ ok: false, error: "Ignored" })
    expect(m.config.num).toBe(0)
  })

  test("shards kept across a change keep serving their data", () => {
    const m = machine()
    reconfigure(m, allOn(1, 100))
    const ck = clerk()
    write(m, ck({ op: "put", key: keyOf[2]!, value: "kept" }))
    reconfigure(m, split(2, 100, 101))
    expect(m.shardState(2)).toBe("Serving")
    expect(m.get(keyOf[2]!)).toEqual({ ok: true, value: "kept" })
    expect(m.prevConfig.num).toBe(1)
  })

  test("a shard that leaves is frozen (HandingOff): no reads, no writes, data kept", () => {
    const m = machine()
    reconfigure(m, allOn(1, 100))
    const ck = clerk()
    write(m, ck({ op: "put", key: keyOf[7]!, value: "v" }))
    const late = ck({ op: "append", key: keyOf[7]!, value: "w" })
    // Accepted before the change, applied after it: the apply-time check must refuse it.
    expect(m.precheck(late.op)).toBeUndefined()
    reconfigure(m, split(2, 100, 101))
    expect(m.shardState(7)).toBe("HandingOff")
    expect(write(m, late)).toMatchObject({ ok: false, error: "WrongGroup" })
    expect(m.precheck(late.op)).toMatchObject({ ok: false, error: "WrongGroup" })
    expect(m.get(keyOf[7]!)).toMatchObject({ ok: false, error: "WrongGroup" })
    expect(m.handOff(2, 7).kind).toBe("data")
    expect(m.canReconfigure()).toBe(false)
  })

  test("a shard that arrives from another group must be pulled before it serves", () => {
    const m = machine(101)
    reconfigure(m, allOn(1, 100))
    reconfigure(m, split(2, 100, 101))
    expect(m.shardStates()).toEqual([...new Array(5).fill("Absent"), ...new Array(5).fill("Pulling")])
    expect(m.pulls()).toEqual(
      [5, 6, 7, 8, 9].map((shard) => ({
        shard,
        configNum: 2,
        fromGid: 100,
        servers: servers(100),
        handOffConfigNum: 2,
      })),
    )
    expect(write(m, clerk()({ op: "put", key: keyOf[5]!, value: "x" }))).toMatchObject({ error: "WrongGroup" })
    expect(m.canReconfigure()).toBe(false)
    expect(reconfigure(m, allOn(3, 101))).toMatchObject({ ok: false, error: "Ignored" })
  })

  test("a shard given to no group is parked with its data, and does not hold up later configurations", () => {
    const m = machine()
    reconfigure(m, allOn(1, 100))
    write(m, clerk()({ op: "put", key: keyOf[0]!, value: "v" }))
    reconfigure(m, allOn(2, 0))
    expect(m.shardStates()).toEqual(new Array(N_SHARDS).fill("Parked"))
    expect(m.parkedAt(0)).toBe(2)
    expect(m.get(keyOf[0]!)).toMatchObject({ error: "WrongGroup" })
    expect(m.canReconfigure()).toBe(true)
    expect(reconfigure(m, allOn(3, 0))).toEqual({ ok: true })
    // Given back to the group that parked it: served at once, nothing lost.
    expect(reconfigure(m, allOn(4, 100))).toEqual({ ok: true })
    expect(m.shardStates()).toEqual(new Array(N_SHARDS).fill("Serving"))
    expect(m.get(keyOf[0]!)).toEqual({ ok: true, value: "v" })
  })

  test("the next group given a parked shard pulls it, data and sessions, from the group that parked it", () => {
    const a = machine(100)
    const b = machine(101)
    const ck = clerk()
    for (const m of [a, b]) reconfigure(m, allOn(1, 100))
    const put = ck({ op: "put", key: keyOf[4]!, value: "kept" })
    expect(write(a, put)).toEqual({ ok: true })
    for (const m of [a, b]) reconfigure(m, allOn(2, 0))
    for (const m of [a, b]) reconfigure(m, allOn(3, 0))
    for (const m of [a, b]) reconfigure(m, allOn(4, 101))
    expect(a.shardState(4)).toBe("Parked")
    expect(b.shardState(4)).toBe("Pulling")
    const [task] = b.pulls().filter((t) => t.shard === 4)
    expect(task).toEqual({ shard: 4, configNum: 4, fromGid: 100, servers: servers(100), handOffConfigNum: 2 })
    const handOff = a.handOff(2, 4)
    if (handOff.kind !== "data") throw new Error(`expected data, got ${handOff.kind}`)
    expect(b.apply(wholeShard(4, 4, handOff.bytes))).toEqual({ ok: true })
    expect(b.get(keyOf[4]!)).toEqual({ ok: true, value: "kept" })
    // The session came along: a retry of the put is answered, not applied again.
    expect(write(b, put)).toEqual({ ok: true })
    expect(a.deleteStatus(2, 4)).toBe("pending")
    expect(a.apply({ type: "deleteShard", configNum: 2, shard: 4 })).toEqual({ ok: true })
    expect(a.shardState(4)).toBe("Absent")
    expect(a.deleteStatus(2, 4)).toBe("done")
    expect(b.pendingGc().filter((t) => t.shard === 4)).toEqual([task!])
  })
})

describe("shard migration (InsertShard, DeleteShard, GcDone)", () => {
  const twoGroups = () => {
    const a = machine(100)
    const b = machine(101)
    const ck = clerk()
    for (const m of [a, b]) reconfigure(m, allOn(1, 100))
    for (let s = 0; s < N_SHARDS; s++) write(a, ck({ op: "put", key: keyOf[s]!, value: `v${s}` }))
    const c2 = split(2, 100, 101)
    for (const m of [a, b]) reconfigure(m, c2)
    return { a, b, ck, c2 }
  }

  test("an inserted shard serves at once (AwaitingGc) with its data", () => {
    const { a, b } = twoGroups()
    const handOff = a.handOff(2, 6)
    if (handOff.kind !== "data") throw new Error("expected data")
    expect(b.apply(wholeShard(2, 6, handOff.bytes))).toEqual({ ok: true })
    expect(b.shardState(6)).toBe("AwaitingGc")
    expect(b.get(keyOf[6]!)).toEqual({ ok: true, value: "v6" })
    expect(b.pendingGc()).toEqual([
      { shard: 6, configNum: 2, fromGid: 100, servers: servers(100), handOffConfigNum: 2 },
    ])
    expect(b.canReconfigure()).toBe(false)
  })

  test("InsertShard applies only to a shard being pulled in the current configuration", () => {
    const { a, b } = twoGroups()
    const handOff = a.handOff(2, 6)
    if (handOff.kind !== "data") throw new Error("expected data")
    const insert = (configNum: number, shard: number) => b.apply(wholeShard(configNum, shard, handOff.bytes))
    expect(insert(1, 6)).toMatchObject({ error: "Ignored" })
    expect(insert(3, 6)).toMatchObject({ error: "Ignored" })
    expect(insert(2, 1)).toMatchObject({ error: "Ignored" })
    expect(insert(2, 99)).toMatchObject({ error: "Ignored" })
    expect(insert(2, 6)).toEqual({ ok: true })
    expect(insert(2, 6)).toMatchObject({ error: "Ignored" })
    expect(b.apply(wholeShard(2, 7, new Uint8Array([1, 2, 3])))).toMatchObject({
      error: "Ignored",
    })
    expect(b.shardState(7)).toBe("Pulling")
  })

  test("a shard installed in pieces serves only once the last piece is in", () => {
    const { a, b } = twoGroups()
    const handOff = a.handOff(2, 6)
    if (handOff.kind !== "data") throw new Error("expected data")
    const { bytes, checksum } = handOff
    const piece = (offset: number, end: number, sum = checksum): ShardCommand => ({
      type: "installPiece",
      configNum: 2,
      shard: 6,
      offset,
      total: bytes.length,
      checksum: sum,
      bytes: bytes.subarray(offset, end),
    })
    const third = Math.floor(bytes.length / 3)
    expect(b.apply(piece(0, third))).toEqual({ ok: true })
    expect(b.installedBytes(6)).toBe(third)
    // A duplicate, a gap and a piece of another copy are refused; the install stands where it was.
    expect(b.apply(piece(0 + 1, third))).toMatchObject({ error: "Ignored" })
    expect(b.apply(piece(2 * third, bytes.length))).toMatchObject({ error: "Ignored" })
    expect(b.apply(piece(third, 2 * third, checksum ^ 1))).toMatchObject({ error: "Ignored" })
    expect(b.installedBytes(6)).toBe(third)
    expect(b.shardState(6)).toBe("Pulling")
    expect(b.get(keyOf[6]!)).toMatchObject({ error: "WrongGroup" })
    // A replica restored from a snapshot taken mid-way continues the same install.
    const restored = ShardStateMachine.restore(b.snapshot(), { gid: 101, nShards: N_SHARDS })
    expect(restored.installedBytes(6)).toBe(third)
    for (const m of [b, restored]) {
      expect(m.apply(piece(third, 2 * third))).toEqual({ ok: true })
      expect(m.shardState(6)).toBe("Pulling")
      expect(m.apply(piece(2 * third, bytes.length))).toEqual({ ok: true })
      expect(m.shardState(6)).toBe("AwaitingGc")
      expect(m.get(keyOf[6]!)).toEqual({ ok: true, value: "v6" })
    }
    expect(restored.snapshot()).toEqual(b.snapshot())
  })

  test("a shard whose pieces fail the checksum is not installed, and the install starts over", () => {
    const { a, b } = twoGroups()
    const handOff = a.handOff(2, 6)
    if (handOff.kind !== "data") throw new Error("expected data")
    const damaged = handOff.bytes.slice()
    damaged[damaged.length - 1]! ^= 0xff
    const piece: ShardCommand = {
      type: "installPiece",
      configNum: 2,
      shard: 6,
      offset: 0,
      total: damaged.length,
      checksum: handOff.checksum,
      bytes: damaged,
    }
    expect(b.apply(piece)).toMatchObject({ error: "Ignored" })
    expect(b.shardState(6)).toBe("Pulling")
    expect(b.installedBytes(6)).toBe(0)
    expect(b.apply(wholeShard(2, 6, handOff.bytes))).toEqual({ ok: true })
  })

  test("DeleteShard drops the frozen copy and is idempotent", () => {
    const { a } = twoGroups()
    const before = a.snapshot().length
    expect(a.deleteStatus(2, 5)).toBe("pending")
    expect(a.apply({ type: "deleteShard", configNum: 2, shard: 5 })).toEqual({ ok: true })
    expect(a.shardState(5)).toBe("Absent")
    expect(a.snapshot().length).toBeLessThan(before)
    expect(a.deleteStatus(2, 5)).toBe("done")
    expect(a.handOff(2, 5)).toEqual({ kind: "gone" })
    expect(a.apply({ type: "deleteShard", configNum: 2, shard: 5 })).toEqual({ ok: true })
    expect(a.apply({ type: "deleteShard", configNum: 1, shard: 5 })).toEqual({ ok: true })
    expect(a.apply({ type: "deleteShard", configNum: 3, shard: 6 })).toMatchObject({ ok: false, error: "NotReady" })
    expect(a.deleteStatus(3, 6)).toBe("notReady")
    expect(a.shardState(6)).toBe("HandingOff")
  })

  test("a DeleteShard for an older configuration does not touch the current one", () => {
    const { a, b, c2 } = twoGroups()
    for (let s = 5; s < N_SHARDS; s++) migrate(a, b, c2, s)
    const c3 = allOn(3, 101)
    for (const m of [a, b]) reconfigure(m, c3)
    expect(a.shardState(0)).toBe("HandingOff")
    expect(a.apply({ type: "deleteShard", configNum: 2, shard: 0 })).toEqual({ ok: true })
    expect(a.shardState(0)).toBe("HandingOff")
    expect(a.deleteStatus(2, 0)).toBe("done")
    expect(a.deleteStatus(3, 0)).toBe("pending")
  })

  test("GcDone turns an installed shard into a plain serving one", () => {
    const { a, b, c2 } = twoGroups()
    expect(b.apply({ type: "gcDone", configNum: 2, shard: 5 })).toMatchObject({ error: "Ignored" })
    migrate(a, b, c2, 5)
    expect(b.shardState(5)).toBe("Serving")
    expect(b.apply({ type: "gcDone", configNum: 2, shard: 5 })).toMatchObject({ error: "Ignored" })
  })

  test("after a full migration both groups can move on", () => {
    const { a, b, c2 } = twoGroups()
    for (let s = 5; s < N_SHARDS; s++) migrate(a, b, c2, s)
    expect(a.canReconfigure()).toBe(true)
    expect(b.canReconfigure()).toBe(true)
    for (let s = 0; s < N_SHARDS; s++) {
      const owner = s < 5 ? a : b
      expect(owner.get(keyOf[s]!)).toEqual({ ok: true, value: `v${s}` })
      expect((s < 5 ? b : a).get(keyOf[s]!)).toMatchObject({ error: "WrongGroup" })
    }
  })

  test("handOff: not ready before the configuration, gone after it", () => {
    const a = machine(100)
    reconfigure(a, allOn(1, 100))
    expect(a.handOff(2, 5)).toEqual({ kind: "notReady" })
    reconfigure(a, split(2, 100, 101))
    expect(a.handOff(2, 0)).toEqual({ kind: "gone" })
    expect(a.handOff(2, 5).kind).toBe("data")
    expect(a.handOff(1, 5)).toEqual({ kind: "gone" })
    expect(a.handOff(2, 42)).toEqual({ kind: "gone" })
  })

  test("writes stay exactly-once across a move: the sessions travel with the shard", () => {
    const { a, b, ck, c2 } = twoGroups()
    for (let s = 5; s < N_SHARDS; s++) migrate(a, b, c2, s)
    // Applied at the old owner, but the reply is lost; then shard 2 moves to group 101.
    const first = ck({ op: "append", key: keyOf[2]!, value: "+" })
    expect(write(a, first)).toEqual({ ok: true })
    const c3 = config(3, [100, 100, 101, 100, 100, 101, 101, 101, 101, 101])
    for (const m of [a, b]) reconfigure(m, c3)
    migrate(a, b, c3, 2)
    // The client retries at the new owner, which answers from the session instead of appending again.
    expect(write(b, first)).toEqual({ ok: true })
    expect(b.get(keyOf[2]!)).toEqual({ ok: true, value: "v2+" })
    expect(write(b, ck({ op: "append", key: keyOf[2]!, value: "!" }))).toEqual({ ok: true })
    expect(b.get(keyOf[2]!)).toEqual({ ok: true, value: "v2+!" })
  })

  test("a shard accepts a client it never saw; an unknown client claiming acks gets OutcomeUnknown", () => {
    const m = machine()
    reconfigure(m, allOn(1, 100))
    const fresh: KvCommand = {
      clientId: 9,
      seq: 1,
      ackedBelow: 1,
      nowMs: 5,
      op: { op: "put", key: keyOf[3]!, value: "x" },
    }
    expect(write(m, fresh)).toEqual({ ok: true })
    const lost: KvCommand = {
      clientId: 11,
      seq: 4,
      ackedBelow: 4,
      nowMs: 5,
      op: { op: "put", key: keyOf[3]!, value: "y" },
    }
    // Its writes may have been applied in a session this shard has forgotten.
    expect(write(m, lost)).toMatchObject({ ok: false, error: "OutcomeUnknown" })
  })
})

describe("snapshots", () => {
  const populated = () => {
    const a = machine(100)
    const ck = clerk()
    reconfigure(a, allOn(1, 100))
    for (let s = 0; s < N_SHARDS; s++) write(a, ck({ op: "put", key: keyOf[s]!, value: `value-${s}` }))
    reconfigure(a, split(2, 100, 101))
    return a
  }

  test("restore gives back the same state, byte for byte", () => {
    const a = populated()
    const bytes = a.snapshot()
    const b = ShardStateMachine.restore(bytes, { gid: 100, nShards: N_SHARDS })
    expect(b.snapshot()).toEqual(bytes)
    expect(b.config).toEqual(a.config)
    expect(b.prevConfig).toEqual(a.prevConfig)
    expect(b.shardStates()).toEqual(a.shardStates())
    for (let s = 0; s < N_SHARDS; s++) expect(b.get(keyOf[s]!)).toEqual(a.get(keyOf[s]!))
    expect(b.handOff(2, 7)).toEqual(a.handOff(2, 7))
  })

  test("an empty group's snapshot is small, and absent shards cost a byte each", () => {
    const empty = machine(100).snapshot()
    expect(empty.length).toBeLessThan(64)
    const m = machine(100)
    reconfigure(m, allOn(1, 101))
    // The configuration grows by the group's servers; the shards add nothing.
    expect(m.snapshot().length - empty.length).toBeLessThan(64)
  })

  test("restore refuses another group's snapshot and corrupt bytes", () => {
    const bytes = populated().snapshot()
    expect(() => ShardStateMachine.restore(bytes, { gid: 101, nShards: N_SHARDS })).toThrow(/group/)
    expect(() =>
      ShardStateMachine.restore(bytes.subarray(0, bytes.length - 3), { gid: 100, nShards: N_SHARDS }),
    ).toThrow(/corrupt/)
    expect(() => ShardStateMachine.restore(new Uint8Array([0x93, 1, 2, 3]), { gid: 100, nShards: N_SHARDS })).toThrow()
  })
})

describe("command encoding", () => {
  test("every command round-trips", () => {
    const commands: ShardCommand[] = [
      {
        type: "client",
        command: { clientId: 3, seq: 4, ackedBelow: 2, nowMs: 99, op: { op: "append", key: "k", value: "v" } },
      },
      { type: "reconfigure", config: split(4, 100, 102) },
      {
        type: "installPiece",
        configNum: 4,
        shard: 3,
        offset: 2,
        total: 5,
        checksum: 77,
        bytes: new Uint8Array([9, 8, 7]),
      },
      { type: "deleteShard", configNum: 4, shard: 3 },
      { type: "gcDone", configNum: 4, shard: 3 },
    ]
    for (const c of commands) expect(decodeShardCommand(encodeShardCommand(c))).toEqual(c)
  })

  test("malformed bytes decode to undefined", () => {
    for (const bytes of [
      new Uint8Array([]),
      new Uint8Array([0xc1]),
      encodeShardCommand({ type: "gcDone", configNum: 1, shard: 1 }).subarray(0, 2),
    ]) {
      expect(decodeShardCommand(bytes)).toBeUndefined()
    }
  })
})

describe("determinism", () => {
  test("replicas applying the same random log hold identical state, even one restored midway", () => {
    const seed = seedFromEnv()
    console.log(`shard state machine determinism seed ${seed} (replay: KV_SEED=${seed})`)
    const random = new SeededRandom(seed)
    const gids = [100, 101, 102]
    let configNum = 0
    const log: ShardCommand[] = []
    const clerks = [clerk(1, 10), clerk(2, 20), clerk(3, 30)]
    // A log as one group (100) might see it: configs, migrations (some duplicated), client writes.
    const shadow = machine(100)
    for (let step = 0; step < 2_000; step++) {
      const dice = random.int(100)
      let command: ShardCommand
      if (dice < 5 && shadow.canReconfigure()) {
        const shards = Array.from({ length: N_SHARDS }, () => gids[random.int(gids.length)]!)
        command = { type: "reconfigure", config: config(++configNum, shards) }
      } else if (dice < 20 && shadow.pulls().length > 0) {
        const task = shadow.pulls()[0]!
        command = wholeShard(task.configNum, task.shard, donorShard())
      } else if (dice < 30 && shadow.pendingGc().length > 0) {
        const task = shadow.pendingGc()[0]!
        command = { type: "gcDone", configNum: task.configNum, shard: task.shard }
      } else if (dice < 40) {
        command = { type: "deleteShard", configNum: shadow.config.num, shard: random.int(N_SHARDS) }
      } else {
        const key = keyOf[random.int(N_SHARDS)]!
        const ck = clerks[random.int(clerks.length)]!
        command = { type: "client", command: ck({ op: random.chance(0.5) ? "append" : "put", key, value: `${step}` }) }
      }
      shadow.apply(command)
      log.push(command)
    }
    const a = machine(100)
    const b = machine(100)
    let c = machine(100)
    const restoreAt = random.int(log.length)
    log.forEach((command, i) => {
      const bytes = encodeShardCommand(command)
      const ra = a.apply(decodeShardCommand(bytes)!)
      const rb = b.apply(decodeShardCommand(bytes)!)
      const rc = c.apply(decodeShardCommand(bytes)!)
      expect(rb).toEqual(ra)
      expect(rc).toEqual(ra)
      if (i === restoreAt) c = ShardStateMachine.restore(c.snapshot(), { gid: 100, nShards: N_SHARDS })
    })
    expect(b.snapshot()).toEqual(a.snapshot())
    expect(c.shardStates()).toEqual(a.shardStates())
    expect(c.config).toEqual(a.config)
    for (const key of keyOf) expect(c.get(key)).toEqual(a.get(key))
    expect(a.snapshot()).toEqual(shadow.snapshot())
  })
})

/** The bytes of a one-key shard as another group hands it off. */
const donorShard = (): Uint8Array => {
  const m = new ShardStateMachine({ gid: 500, nShards: N_SHARDS })
  m.apply({ type: "reconfigure", config: allOn(1, 500) })
  m.apply({
    type: "client",
    command: { clientId: 42, seq: 1, ackedBelow: 1, nowMs: 1, op: { op: "put", key: keyOf[0]!, value: "donor" } },
  })
  m.apply({ type: "reconfigure", config: allOn(2, 501) })
  const handOff = m.handOff(2, 0)
  if (handOff.kind !== "data") throw new Error("donor has no data")
  return handOff.bytes
}
