/**
 * Proves that a shard group's state restores a slice at a time (the snapshot a replica starts
 * from): the steps give no machine before the last, the machine they give is the one `restore`
 * gives (its snapshot the same bytes, shards held and parked alike), and damage inside a shard's
 * store is found in a later step with the error a whole restore gives.
 */
import { expect, test } from "bun:test"
import type { KvCommand } from "@kv/kvraft"
import { makeConfig, noGroup, shardOf } from "@kv/shardctrler"
import { ShardStateMachine } from "../src/stateMachine/index.ts"

const N_SHARDS = 10
const GID = 100
const KEYS = 20_000
const options = { gid: GID, nShards: N_SHARDS }
/** The shard given to no group after the writes: the group keeps its data parked. */
const PARKED = 3

const servers = new Map([[GID, ["g100-0"]]])

/** A group that held every shard, took KEYS writes, then parked shard PARKED. */
const filledGroup = (): ShardStateMachine => {
  const machine = new ShardStateMachine(options)
  machine.apply({ type: "reconfigure", config: makeConfig(1, new Array(N_SHARDS).fill(GID), servers) })
  const seqs = new Array<number>(N_SHARDS).fill(0)
  for (let i = 0; i < KEYS; i++) {
    const key = `key-${i}`
    const seq = ++seqs[shardOf(key, N_SHARDS)]!
    const command: KvCommand = {
      clientId: 1,
      seq,
      ackedBelow: seq,
      nowMs: 1_000,
      op: { op: "put", key, value: `v${i}` },
    }
    expect(machine.apply({ type: "client", command })).toMatchObject({ ok: true })
  }
  const next = new Array(N_SHARDS).fill(GID)
  next[PARKED] = noGroup
  machine.apply({ type: "reconfigure", config: makeConfig(2, next, servers) })
  expect(machine.parkedAt(PARKED)).toBe(2)
  return machine
}

/** Steps `job` to its end: the result and how many steps gave nothing. */
const run = <A>(job: { step(): A | undefined }): { result: A; emptySteps: number } => {
  let emptySteps = 0
  for (;;) {
    const result = job.step()
    if (result !== undefined) return { result, emptySteps }
    emptySteps++
  }
}

test("restored a slice at a time, a group's state is the one a whole restore gives, parked shards included", () => {
  const machine = filledGroup()
  const bytes = machine.snapshot()

  const { result: restored, emptySteps } = run(ShardStateMachine.beginRestore(bytes, options, 100))
  // Each shard's store takes steps of its own (the parked one too): it reads its stored index and
  // checks it a slice at a time.
  expect(emptySteps).toBeGreaterThan(N_SHARDS)
  expect(Buffer.from(restored.snapshot()).equals(Buffer.from(bytes))).toBe(true)
  expect(restored.shardKeyCounts()).toEqual(machine.shardKeyCounts())
  expect(restored.parkedAt(PARKED)).toBe(2)
  const served = Array.from({ length: KEYS }, (_, i) => `key-${i}`).find((k) => shardOf(k, N_SHARDS) !== PARKED)!
  expect(restored.get(served)).toEqual(machine.get(served))

  const whole = ShardStateMachine.restore(bytes, options)
  expect(Buffer.from(whole.snapshot()).equals(Buffer.from(bytes))).toBe(true)
})

test("damage inside a shard's store is found in a later slice, with the error a whole restore gives", () => {
  const bytes = filledGroup().snapshot()
  // A key's first byte made invalid UTF-8: the outer msgpack still reads, the shard's store does not.
  const at = Buffer.from(bytes).indexOf(`key-${KEYS - 1}`)
  expect(at).toBeGreaterThan(0)
  const damaged = bytes.slice()
  damaged[at] = 0xff

  expect(() => ShardStateMachine.restore(damaged, options)).toThrow(/corrupt snapshot: (parked )?shard \d+: /)
  const job = ShardStateMachine.beginRestore(damaged, options, 100)
  let emptySteps = 0
  let error: unknown
  try {
    while (job.step() === undefined) emptySteps++
  } catch (cause) {
    error = cause
  }
  expect(String(error)).toMatch(/corrupt snapshot: (parked )?shard \d+: /)
  expect(emptySteps).toBeGreaterThan(0)
})
