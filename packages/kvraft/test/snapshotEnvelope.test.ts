/**
 * Proves that the RSM wraps a state machine's snapshot with the member record in place: the
 * envelope goes into room the state machine left at the front of its own buffer, so a large
 * snapshot is not copied again (each copy of a 100 MiB snapshot pauses the replica's event loop),
 * and the bytes are those the copying wrap makes, which restore to the same record and state.
 */
import { expect, test } from "bun:test"
import { MemberRecord } from "../src/rsm/memberRecord.ts"
import type { ReplicatedStateMachine } from "../src/rsm/stateMachine.ts"
import { type KvCommand, KvStateMachine } from "../src/stateMachine/index.ts"

const filled = (keys: number, valueBytes: number): KvStateMachine => {
  const machine = new KvStateMachine()
  for (let i = 0; i < keys; i++) {
    const command: KvCommand = {
      clientId: 7,
      seq: i + 1,
      ackedBelow: i + 1,
      nowMs: 1_700_000_000_000 + i,
      op: { op: "put", key: `key${String(i).padStart(6, "0")}`, value: String(i).padStart(valueBytes, "v") },
    }
    if (!machine.apply(command).ok) throw new Error("a put failed")
  }
  return machine
}

/** The RSM's view of `machine`, remembering the last buffer `snapshotWithRoom` returned. */
const adapted = (machine: KvStateMachine) => {
  const seen: { last?: Uint8Array } = {}
  const sm: ReplicatedStateMachine<unknown> = {
    apply: () => undefined,
    snapshot: () => machine.snapshot(),
    snapshotWithRoom: (roomBytes) => {
      seen.last = machine.snapshotWithRoom(roomBytes)
      return seen.last
    },
    restore: () => undefined,
  }
  return { sm, seen }
}

const recordWith = (named: number[], held: number[]): MemberRecord => {
  const record = new MemberRecord()
  for (const id of named) record.named.add(id)
  for (const id of held) record.heldData.add(id)
  return record
}

test("a large snapshot is wrapped in the state machine's own buffer, as the copying wrap would write it", () => {
  const machine = filled(2_000, 100)
  const record = recordWith([1, 2, 3, 4], [1, 3])
  const { sm, seen } = adapted(machine)
  const wrapped = record.snapshotOf(sm)
  expect(seen.last).toBeDefined()
  expect(wrapped).toBe(seen.last as Uint8Array)
  expect(wrapped).toEqual(record.wrapSnapshot(machine.snapshot()))

  const back = new MemberRecord()
  const restored = KvStateMachine.restore(back.unwrapSnapshot(wrapped))
  expect([...back.named]).toEqual([1, 2, 3, 4])
  expect([...back.heldData]).toEqual([1, 3])
  expect(restored.size()).toBe(2_000)
  expect(restored.snapshot()).toEqual(machine.snapshot())
})

test("a small snapshot and a record of many ids wrapped in place restore to the same record and state", () => {
  const named = Array.from({ length: 40 }, (_, i) => i + 1)
  const held = Array.from({ length: 20 }, (_, i) => 2 * i + 1)
  for (const keys of [0, 10, 300]) {
    const machine = filled(keys, 8)
    const { sm } = adapted(machine)
    const wrapped = recordWith(named, held).snapshotOf(sm)
    const back = new MemberRecord()
    const restored = KvStateMachine.restore(back.unwrapSnapshot(wrapped))
    expect([...back.named]).toEqual(named)
    expect([...back.heldData]).toEqual(held)
    expect(restored.size()).toBe(keys)
    expect(restored.snapshot()).toEqual(machine.snapshot())
  }
})

test("a state machine without room to offer is wrapped by copying its snapshot", () => {
  const machine = filled(50, 8)
  const record = recordWith([1, 2, 3], [])
  const sm: ReplicatedStateMachine<unknown> = {
    apply: () => undefined,
    snapshot: () => machine.snapshot(),
    restore: () => undefined,
  }
  const wrapped = record.snapshotOf(sm)
  expect(wrapped).toEqual(record.wrapSnapshot(machine.snapshot()))
  expect(KvStateMachine.restore(new MemberRecord().unwrapSnapshot(wrapped)).size()).toBe(50)
})
