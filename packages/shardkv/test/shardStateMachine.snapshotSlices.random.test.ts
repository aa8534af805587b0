/**
 * Proves that a shard group's snapshot taken a slice at a time while commands keep being applied
 * holds exactly the state of its start (the bytes a snapshot taken at once then gave), restores to
 * it, and that the group answers every command, read and hand-off between slices as a group that
 * never snapshots: through shards moving in and out, parked and unparked, pulled in several pieces
 * (some of them half installed when the snapshot begins), deleted, and snapshots wanted at once or
 * begun again meanwhile. Replay with KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { type KvCommand, KvStateMachine, type SnapshotJob } from "@kv/kvraft"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { type Config, type Gid, makeConfig, noGroup, shardOf } from "@kv/shardctrler"
import { Decoder, Encoder } from "@msgpack/msgpack"
import { crc32 } from "../src/stateMachine/crc32.ts"
import { type ShardCommand, type ShardResult, ShardStateMachine } from "../src/stateMachine/index.ts"

const N_SHARDS = 6
const GID = 100
const OTHER = 101
const options = { gid: GID, nShards: N_SHARDS }

/** Keys per shard: enough for a shard's store to pass the binary snapshot format's threshold. */
const keysOf: string[][] = (() => {
  const keys: string[][] = Array.from({ length: N_SHARDS }, () => [])
  for (let i = 0; keys.some((k) => k.length < 400); i++) {
    const key = `k${i}`
    const list = keys[shardOf(key, N_SHARDS)]!
    if (list.length < 400) list.push(key)
  }
  return keys
})()

const configOf = (num: number, shards: readonly Gid[]): Config => {
  const gids = [...new Set(shards)].filter((g) => g !== noGroup)
  return makeConfig(num, shards, new Map(gids.map((g) => [g, [`g${g}-0`]])))
}

/** The data another group hands off for `shard`: a store of a few hundred keys (or a handful). */
const donorBytes = (shard: number, large: boolean): Uint8Array => {
  const kv = new KvStateMachine()
  const keys = keysOf[shard]!
  const n = large ? 300 : 5
  for (let i = 0; i < n; i++) {
    kv.apply({
      clientId: 900,
      seq: i + 1,
      ackedBelow: i + 1,
      nowMs: 1,
      op: { op: "put", key: keys[i]!, value: `d${i}` },
    })
  }
  return kv.snapshot()
}

const canonical = (bytes: Uint8Array): boolean => {
  const again = new Encoder().encode(new Decoder().decode(bytes))
  return Buffer.from(again).equals(Buffer.from(bytes))
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b))

test("a shard group's snapshot taken in slices while commands apply holds the state of its start", () => {
  const seed = seedFromEnv()
  console.log(`shard snapshot slices: seed ${seed} (replay: KV_SEED=${seed})`)
  const random = new SeededRandom(seed)
  const donors = Array.from({ length: N_SHARDS }, (_, shard) => [donorBytes(shard, false), donorBytes(shard, true)])
  const plain = new ShardStateMachine(options)
  let sliced = new ShardStateMachine(options)
  /** The snapshot being taken, what a snapshot at once gave at its start, and the commands since. */
  let job:
    | {
        job: SnapshotJob
        expected: Uint8Array
        room: number
        since: { command: ShardCommand; result: ShardResult }[]
      }
    | undefined
  const seqs = new Map<string, number>()
  let configNum = 0
  /** Per shard being pulled: the bytes it is pulled from (fixed for the pull). */
  const pulling = new Map<number, Uint8Array>()
  const counts = {
    completed: 0,
    slices: 0,
    appliedDuring: 0,
    withLargeStore: 0,
    withIncoming: 0,
    withParked: 0,
    restored: 0,
  }

  const apply = (command: ShardCommand) => {
    const result = plain.apply(command)
    expect(sliced.apply(command)).toEqual(result)
    if (job !== undefined) {
      counts.appliedDuring++
      job.since.push({ command, result })
    }
  }

  const write = (shard: number, key?: string): ShardCommand => {
    const keys = keysOf[shard]!
    const clientId = 1 + random.int(3)
    const seqKey = `${clientId}/${shard}`
    const seq = (seqs.get(seqKey) ?? 0) + 1
    seqs.set(seqKey, seq)
    const k = key ?? keys[random.int(keys.length)]!
    const command: KvCommand = {
      clientId,
      seq,
      ackedBelow: seq,
      nowMs: 1_000,
      op: random.chance(0.15) ? { op: "delete", key: k } : { op: "put", key: k, value: `v${seq}` },
    }
    return { type: "client", command }
  }

  const nextCommand = (): ShardCommand | undefined => {
    const roll = random.int(100)
    if (roll < 3 && plain.canReconfigure()) {
      // This group, the other one, or no group (the shard is parked by its last holder).
      const owners = [GID, GID, OTHER, noGroup]
      const shards = Array.from({ length: N_SHARDS }, () => owners[random.int(owners.length)]!)
      return { type: "reconfigure", config: configOf(++configNum, shards) }
    }
    if (roll < 25 && plain.pulls().length > 0) {
      const task = plain.pulls()[random.int(plain.pulls().length)]!
      let bytes = pulling.get(task.shard)
      if (bytes === undefined || plain.installedBytes(task.shard) === 0) {
        bytes = donors[task.shard]![random.int(2)]!
        pulling.set(task.shard, bytes)
      }
      const offset = plain.installedBytes(task.shard)
      const length = Math.min(bytes.length - offset, 1 + random.int(Math.ceil(bytes.length / 3)))
      return {
        type: "installPiece",
        configNum: task.configNum,
        shard: task.shard,
        offset,
        total: bytes.length,
        checksum: crc32(bytes),
        bytes: bytes.subarray(offset, offset + length),
      }
    }
    if (roll < 30 && plain.pendingGc().length > 0) {
      const task = plain.pendingGc()[0]!
      return { type: "gcDone", configNum: task.configNum, shard: task.shard }
    }
    if (roll < 34) {
      // The puller of a shard handed off or parked here says it has it.
      const shard = random.int(N_SHARDS)
      const parkedAt = plain.parkedAt(shard)
      const configNum = parkedAt !== undefined && random.chance(0.5) ? parkedAt : plain.config.num
      return { type: "deleteShard", configNum, shard }
    }
    // Writes go to the shards this group serves (the others answer WrongGroup).
    const serving = plain.shardStates().flatMap((state, shard) => (state === "Serving" ? [shard] : []))
    return write(serving.length > 0 && random.chance(0.9) ? serving[random.int(serving.length)]! : random.int(N_SHARDS))
  }

  apply({ type: "incarnate", incarnation: "inc-1" })
  apply({ type: "reconfigure", config: configOf(++configNum, new Array(N_SHARDS).fill(GID)) })
  // Stores past the binary snapshot format's threshold take their own snapshot in several slices.
  for (let shard = 0; shard < N_SHARDS; shard++) {
    for (const key of keysOf[shard]!.slice(0, 300)) apply(write(shard, key))
  }
  for (let step = 0; step < 12_000; step++) {
    const roll = random.int(100)
    if (roll < 60) {
      const command = nextCommand()
      if (command !== undefined) apply(command)
    } else if (roll < 66) {
      const shard = random.int(N_SHARDS)
      const key = keysOf[shard]![random.int(keysOf[shard]!.length)]!
      expect(sliced.get(key)).toEqual(plain.get(key))
    } else if (roll < 69) {
      // A puller asks for a shard handed off or parked here (which takes its store's snapshot now).
      const shard = random.int(N_SHARDS)
      const configNum = plain.parkedAt(shard) ?? plain.config.num
      const handOff = sliced.handOff(configNum, shard)
      expect(handOff).toEqual(plain.handOff(configNum, shard))
    } else if (job === undefined) {
      if (random.chance(0.15)) {
        const room = random.int(3) * 9
        const expected = plain.snapshot()
        job = { job: sliced.beginSnapshot(room, 1 + random.int(4_096)), expected, room, since: [] }
        if (plain.shardStates().some((_, shard) => plain.installedBytes(shard) > 0)) counts.withIncoming++
        if (plain.shardKeyCounts().some((n) => n >= 256)) counts.withLargeStore++
        if (plain.shardStates().includes("Parked")) counts.withParked++
      }
    } else if (roll < 71) {
      // A snapshot wanted at once meanwhile (as a lagging follower's), or a job begun again.
      if (random.chance(0.5)) expect(same(sliced.snapshot(), plain.snapshot())).toBe(true)
      else {
        const room = random.int(3) * 9
        job = { job: sliced.beginSnapshot(room, 1 + random.int(4_096)), expected: plain.snapshot(), room, since: [] }
      }
    } else {
      counts.slices++
      const bytes = job.job.step()
      if (bytes === undefined) continue
      const body = bytes.subarray(job.room)
      expect(same(body, job.expected)).toBe(true)
      // The bytes msgpack's own encoder gives for the same value (what snapshot() wrote before).
      expect(canonical(body)).toBe(true)
      const restored = ShardStateMachine.restore(body, options)
      for (const { command, result } of job.since) expect(restored.apply(command)).toEqual(result)
      expect(same(restored.snapshot(), plain.snapshot())).toBe(true)
      counts.completed++
      // Now and then the replica restarts from what it wrote, and has applied the log after it.
      if (random.chance(0.2)) {
        sliced = restored
        counts.restored++
      }
      job = undefined
    }
  }
  expect(same(sliced.snapshot(), plain.snapshot())).toBe(true)
  console.log(`shard snapshot slices: ${JSON.stringify(counts)}; keys per shard ${plain.shardKeyCounts().join(" ")}`)
  expect(counts.completed).toBeGreaterThan(20)
  expect(counts.appliedDuring).toBeGreaterThan(counts.completed)
  expect(counts.withIncoming).toBeGreaterThan(0)
  expect(counts.withParked).toBeGreaterThan(0)
  expect(counts.withLargeStore).toBeGreaterThan(10)
}, 60_000)
