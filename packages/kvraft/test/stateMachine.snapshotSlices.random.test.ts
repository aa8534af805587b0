/**
 * Proves that a snapshot taken a slice at a time while commands keep being applied holds exactly
 * the state of its start (the same bytes a snapshot taken at once then gives), and that the store
 * answers every command, read and listing between slices, and after it takes the snapshot's bytes
 * as its base, exactly as a store that never snapshots: through deletes and re-puts of keys the
 * frozen view holds, keys added and removed during the snapshot, leases, transactions, and strings
 * only the msgpack format carries (a lone surrogate). Replay with KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { type KvCommand, type KvOp, KvStateMachine, type SnapshotJob } from "../src/stateMachine/index.ts"

const alphabet = ["a", "b", "/", "é", "ж", "中", "\u{1F600}", "\uE000", "0", "\u0080"]

const word = (random: SeededRandom, min: number, max: number) => {
  let s = ""
  for (let n = min + random.int(max - min + 1); n > 0; n--) s += alphabet[random.int(alphabet.length)]
  return s
}

test("a snapshot taken in slices while commands apply holds the state of its start", () => {
  const seed = seedFromEnv()
  console.log(`stateMachine snapshot slices: seed ${seed} (replay: KV_SEED=${seed})`)
  const random = new SeededRandom(seed)
  const keys: string[] = []
  for (let i = 0; i < 1_500; i++) keys.push(word(random, 1, 4))
  const keyOf = () => keys[random.int(keys.length)]!
  const plain = new KvStateMachine()
  let sliced = new KvStateMachine()
  const leases: number[] = []
  let seq = 0
  let nowMs = 1_700_000_000_000
  /** The snapshot being taken, what a snapshot at once gave at its start, and the commands since. */
  let job: { job: SnapshotJob; expected: Uint8Array; room: number; since: KvCommand[] } | undefined
  let sliceCount = 0
  let appliedDuring = 0
  let completed = 0
  let msgpackCompleted = 0
  let loneSurrogates = false

  const newOp = (): KvOp => {
    const roll = random.int(100)
    // In one phase a key holds a lone surrogate: the binary format refuses it, and the frozen view
    // falls back to msgpack. It is deleted when the phase ends.
    if (loneSurrogates && roll < 2) return { op: "put", key: "lone", value: "x\uD800" }
    if (!loneSurrogates && roll < 2) return { op: "delete", key: "lone" }
    const key = keyOf()
    if (roll < 15) return { op: "delete", key }
    if (roll < 65) {
      const value = word(random, 0, 8)
      const lease = leases.length > 0 && random.chance(0.1) ? leases[random.int(leases.length)] : undefined
      return lease === undefined ? { op: "put", key, value } : { op: "put", key, value, lease }
    }
    if (roll < 75) return { op: "append", key, value: word(random, 1, 3) }
    if (roll < 85) {
      const when = { target: "version" as const, cmp: ">" as const, value: random.int(3) }
      return {
        op: "txn",
        key,
        compare: [{ key, ...when }],
        success: [
          { op: "put", key, value: "t" },
          { op: "delete", key: keyOf() },
        ],
        failure: [{ op: "get", key }],
      }
    }
    if (roll < 90) return { op: "casDelete", key, when: { target: "version", cmp: "==", value: random.int(3) } }
    if (roll < 95) return { op: "leaseGrant", key: "", ttlMs: 60_000 }
    return { op: "leaseRevoke", key: "", lease: leases.length > 0 ? leases[random.int(leases.length)]! : 1 }
  }

  for (let step = 0; step < 30_000; step++) {
    nowMs += random.int(3)
    loneSurrogates = step >= 20_000 && step < 23_000
    const roll = random.int(100)
    if (roll < 70) {
      seq++
      const cmd: KvCommand = { clientId: 5, seq, ackedBelow: Math.max(1, seq - 10), nowMs, op: newOp() }
      const result = plain.apply(cmd)
      expect(sliced.apply(cmd)).toEqual(result)
      if (result.ok && result.reply?.kind === "lease" && cmd.op.op === "leaseGrant") leases.push(result.reply.lease)
      if (job !== undefined) {
        appliedDuring++
        job.since.push(cmd)
      }
    } else if (roll < 78) {
      const key = keyOf()
      expect(sliced.getEntry(key)).toEqual(plain.getEntry(key))
    } else if (roll < 83) {
      const options = { limit: 1 + random.int(60), keysOnly: random.chance(0.2) }
      const prefix = random.chance(0.5) ? "" : word(random, 1, 1)
      expect(sliced.list(prefix, options)).toEqual(plain.list(prefix, options))
    } else if (job === undefined) {
      if (random.chance(0.1)) {
        const room = random.int(3) * 7
        // Slices stay small enough to interleave with commands, but not a handful of entries or
        // events: a job that small took thousands of steps, and left too few snapshots for the run.
        const slice = {
          bytes: 64 + random.int(2_000),
          entries: 8 + random.int(300),
          historyEvents: 64 + random.int(2_000),
        }
        // What a snapshot taken at once gives now; a copy, since the plain store reads its own.
        const expected = plain.snapshotWithRoom(room).slice()
        job = { job: sliced.beginSnapshot(room, slice), expected, room, since: [] }
      }
    } else {
      sliceCount++
      const bytes = job.job.step()
      if (bytes !== undefined) {
        expect(Buffer.from(bytes.subarray(job.room)).equals(Buffer.from(job.expected.subarray(job.room)))).toBe(true)
        if (bytes[job.room] !== 0xc1) msgpackCompleted++
        completed++
        // Now and then the replica restarts from what it wrote, then applies the log after it again.
        if (random.chance(0.2)) {
          sliced = KvStateMachine.restore(bytes.subarray(job.room), {})
          for (const cmd of job.since) sliced.apply(cmd)
        }
        job = undefined
      }
    }
    expect(sliced.size()).toBe(plain.size())
    expect(sliced.revision).toBe(plain.revision)
  }
  while (job !== undefined && job.job.step() === undefined) sliceCount++
  expect(sliced.history.all()).toEqual(plain.history.all())
  expect(sliced.list("", { limit: 100_000 })).toEqual(plain.list("", { limit: 100_000 }))
  expect(Buffer.from(sliced.snapshot()).equals(Buffer.from(plain.snapshot()))).toBe(true)
  console.log(
    `stateMachine snapshot slices: ${completed} snapshots (${msgpackCompleted} msgpack) over ${sliceCount} slices, ` +
      `${appliedDuring} commands applied during them, ${plain.size()} keys`,
  )
  expect(completed).toBeGreaterThan(20)
  expect(completed - msgpackCompleted).toBeGreaterThan(10)
  expect(appliedDuring).toBeGreaterThan(1_000)
}, 60_000)
