/**
 * How long a shard group's snapshot holds the event loop: a group of `--keys` keys (100 B values)
 * over 10 shards, three snapshots in a row with `--between` puts applied before each, taken the way
 * the RSM takes them: `beginSnapshot` then one `step` per turn (or `snapshot()` at once when the
 * state machine has no `beginSnapshot`, as before). Wall and CPU time of the begin and of each slice.
 *
 *   bun packages/shardkv/bench/snapshotSlices.ts [--keys 500000] [--between 50000] [--machine PATH]
 *
 * `--machine` loads ShardStateMachine from another file (an older version, to compare).
 */
import { parseArgs } from "node:util"
import { makeConfig, shardOf } from "@kv/shardctrler"
import { ShardStateMachine as Current } from "../src/stateMachine/index.ts"

const { values } = parseArgs({
  options: {
    keys: { type: "string", default: "500000" },
    between: { type: "string", default: "50000" },
    machine: { type: "string" },
  },
})
const keys = Number(values.keys)
const between = Number(values.between)
const N_SHARDS = 10
const GID = 100

interface Machine {
  apply(command: unknown): unknown
  snapshot(): Uint8Array
  beginSnapshot?(roomBytes: number): { step(): Uint8Array | undefined }
}
const Machine: new (options: { gid: number; nShards: number }) => Machine =
  values.machine === undefined ? Current : (await import(values.machine)).ShardStateMachine

const machine = new Machine({ gid: GID, nShards: N_SHARDS })
machine.apply({ type: "reconfigure", config: makeConfig(1, new Array(N_SHARDS).fill(GID), new Map([[GID, ["g"]]])) })
const seqs = new Array<number>(N_SHARDS).fill(0)
const value = "v".repeat(100)
let written = 0
const put = (key: string) => {
  const shard = shardOf(key, N_SHARDS)
  const seq = ++seqs[shard]!
  const op = { op: "put", key, value: `${value.slice(0, 90)}${written++}` }
  machine.apply({ type: "client", command: { clientId: 1, seq, ackedBelow: seq, nowMs: 1_000, op } })
}
for (let i = 0; i < keys; i++) put(`key-${i}`)

const cpuMs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}
const quantile = (sorted: readonly number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
const fmt = (n: number) => n.toFixed(1)

console.log(`${keys} keys, ${between} puts before each snapshot, ${values.machine ?? "this tree's ShardStateMachine"}`)
for (let round = 1; round <= 3; round++) {
  for (let i = 0; i < between; i++) put(`key-${Math.floor(Math.random() * keys)}`)
  const wall: number[] = []
  const cpu: number[] = []
  const timed = <A>(f: () => A): A => {
    const w = performance.now()
    const c = cpuMs()
    const out = f()
    wall.push(performance.now() - w)
    cpu.push(cpuMs() - c)
    return out
  }
  let bytes: Uint8Array | undefined
  if (machine.beginSnapshot === undefined) bytes = timed(() => machine.snapshot())
  else {
    const job = timed(() => machine.beginSnapshot!(0))
    while (bytes === undefined) {
      bytes = timed(() => job.step())
      // A turn of the event loop, as the RSM's snapshot fiber takes after each slice.
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  const begin = wall[0]!
  const slicesWall = [...wall.slice(1)].sort((a, b) => a - b)
  const slicesCpu = [...cpu.slice(1)].sort((a, b) => a - b)
  const total = cpu.reduce((a, b) => a + b, 0)
  console.log(
    `snapshot ${round}: ${(bytes.length / 2 ** 20).toFixed(1)} MiB; ` +
      (slicesWall.length === 0
        ? `at once ${fmt(begin)} ms wall, ${fmt(cpu[0]!)} ms CPU`
        : `begin ${fmt(begin)} ms wall, ${fmt(cpu[0]!)} ms CPU; ${slicesWall.length} slices, wall p50 ${fmt(quantile(slicesWall, 0.5))} / ` +
          `p99 ${fmt(quantile(slicesWall, 0.99))} / longest ${fmt(slicesWall.at(-1)!)} ms, CPU p99 ` +
          `${fmt(quantile(slicesCpu, 0.99))} / longest ${fmt(slicesCpu.at(-1)!)} ms; whole ${fmt(total)} ms CPU`),
  )
}
