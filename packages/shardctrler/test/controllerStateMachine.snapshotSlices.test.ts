/**
 * Proves that the controller takes a snapshot of a long configuration history a slice at a time:
 * admin commands are applied between slices, and the bytes are those a snapshot taken at once gave
 * where it began, restoring that history (incarnations and sessions included), not what came after.
 */
import { expect, test } from "bun:test"
import type { AdminOp } from "../src/server/command.ts"
import { encodeControllerCommand } from "../src/server/command.ts"
import { ControllerStateMachine } from "../src/server/controllerStateMachine.ts"

const N_SHARDS = 16

test("the controller applies commands while a snapshot of a long history is being taken", () => {
  const machine = new ControllerStateMachine(N_SHARDS)
  const seqs = new Map<number, number>()
  const run = (clientId: number, op: AdminOp) => {
    const seq = (seqs.get(clientId) ?? 0) + 1
    seqs.set(clientId, seq)
    return machine.apply(encodeControllerCommand({ clientId, seq, ackedBelow: seq, nowMs: 1_000, op }))
  }
  const groups = Object.fromEntries([1, 2, 3, 4].map((g) => [String(g), [`10.0.0.${g}:7100`, `10.0.0.${g}:7101`]]))
  expect(run(1, { op: "join", groups })).toEqual({ ok: true })
  for (let gid = 1; gid <= 4; gid++) run(2, { op: "register", gid, incarnation: `inc-${gid}`, configNum: 1 })
  for (let i = 0; i < 5_000; i++) run(1 + (i % 3), { op: "move", shard: i % N_SHARDS, gid: 1 + (i % 4) })
  const atBegin = machine.latest()
  const expected = machine.snapshot()

  const room = 11
  const job = machine.beginSnapshot(room, 97)
  let bytes: Uint8Array | undefined
  let steps = 0
  for (; bytes === undefined && steps < 10_000; steps++) {
    bytes = job.step()
    // Between slices the controller goes on applying: new configurations, a new group.
    expect(run(4, { op: "move", shard: steps % N_SHARDS, gid: 1 + (steps % 4) })).toEqual({ ok: true })
    if (steps === 3) expect(run(4, { op: "join", groups: { 9: ["10.0.0.9:7100"] } })).toEqual({ ok: true })
  }
  if (bytes === undefined) throw new Error("the snapshot never finished")
  expect(steps).toBeGreaterThan(40)
  expect(machine.latest().num).toBe(atBegin.num + steps + 1)
  expect(Buffer.from(bytes.subarray(room)).equals(Buffer.from(expected))).toBe(true)

  const restored = new ControllerStateMachine(N_SHARDS)
  restored.restore(bytes.subarray(room))
  expect(restored.latest()).toEqual(atBegin)
  expect(restored.query(2_500)).toEqual(machine.query(2_500))
  expect(restored.incarnationOf(3)).toEqual(machine.incarnationOf(3))
  expect(restored.serversOf(9)).toEqual([])
  // The sessions came along: a retried command is answered, not applied again.
  const retried = encodeControllerCommand({
    clientId: 1,
    seq: seqs.get(1)!,
    ackedBelow: seqs.get(1)!,
    nowMs: 1_000,
    op: { op: "move", shard: 0, gid: 4 },
  })
  expect(restored.apply(retried)).toEqual({ ok: true })
  expect(restored.latest()).toEqual(atBegin)
})
