/**
 * Proves that a store's watch history holds every change above its compact revision in revision
 * order, stays within its bounds by dropping whole old revisions, survives snapshots (older
 * snapshots load compacted at their revision), that replies never split a revision, and that the
 * leader's held polls are bounded, keep their wait across resends, and are not made Compacted by
 * other keys' writes while they wait.
 */
import { describe, expect, test } from "bun:test"
import { Encoder } from "@msgpack/msgpack"
import {
  answerPoll,
  HeldPolls,
  type KvLimits,
  type KvOp,
  KvStateMachine,
  nothingToSend,
  type PollAnswer,
  type WatchPollAnswer,
  type WatchPollRequest,
} from "../src/index.ts"

const clerk = (machine: KvStateMachine) => {
  let seq = 0
  return (op: KvOp) => {
    seq++
    return machine.apply({ clientId: 7, seq, ackedBelow: seq, nowMs: 1_000 + seq, op })
  }
}

const filled = (limits: Partial<KvLimits>, writes: number, key = (i: number) => `k${i % 3}`) => {
  const machine = new KvStateMachine(limits)
  const run = clerk(machine)
  for (let i = 1; i <= writes; i++) run({ op: "put", key: key(i), value: `v${i}` })
  return { machine, run }
}

const poll = (afterRevision: number | undefined, extra: Partial<WatchPollRequest> = {}): WatchPollRequest => ({
  watcher: 1,
  poll: 1,
  key: "",
  prefix: true,
  ...(afterRevision === undefined ? {} : { afterRevision }),
  ...extra,
})

describe("watch history", () => {
  test("keeps every change in revision order, with the entry it made", () => {
    const machine = new KvStateMachine()
    const run = clerk(machine)
    run({ op: "put", key: "a", value: "1" })
    run({ op: "append", key: "a", value: "2" })
    run({ op: "delete", key: "a" })
    run({ op: "delete", key: "absent" })
    run({
      op: "txn",
      key: "b",
      compare: [],
      success: [
        { op: "put", key: "b", value: "B" },
        { op: "put", key: "c", value: "C" },
      ],
      failure: [],
    })
    expect(machine.history.all()).toEqual([
      { type: "put", key: "a", value: "1", modRevision: 1, createRevision: 1, version: 1 },
      { type: "put", key: "a", value: "12", modRevision: 2, createRevision: 1, version: 2 },
      { type: "delete", key: "a", modRevision: 3, createRevision: 0, version: 0 },
      { type: "put", key: "b", value: "B", modRevision: 4, createRevision: 4, version: 1 },
      { type: "put", key: "c", value: "C", modRevision: 4, createRevision: 4, version: 1 },
    ])
    expect(answerPoll(machine, poll(1, { key: "a", prefix: false }))).toEqual({
      ok: true,
      events: [
        { type: "put", key: "a", value: "12", modRevision: 2, createRevision: 1, version: 2 },
        { type: "delete", key: "a", modRevision: 3, createRevision: 0, version: 0 },
      ],
      revision: 4,
    })
  })

  test("drops whole old revisions past its bounds, never the newest, and says Compacted below them", () => {
    const { machine } = filled({ watchHistoryEvents: 100 }, 250)
    expect(machine.history.size).toBe(100)
    expect(machine.history.compactRevision).toBe(150)
    expect(answerPoll(machine, poll(149))).toEqual({
      ok: false,
      error: "Compacted",
      compactRevision: 150,
      revision: 250,
    })
    const answer = answerPoll(machine, poll(150))
    expect(answer.ok && answer.events.map((e) => e.modRevision)).toEqual(Array.from({ length: 100 }, (_, i) => 151 + i))

    // One value larger than the byte bound: the newest revision stays whatever its size.
    const big = new KvStateMachine({ watchHistoryBytes: 1_000 })
    const run = clerk(big)
    run({ op: "put", key: "small", value: "x" })
    run({ op: "put", key: "big", value: "y".repeat(5_000) })
    expect(big.history.all().map((e) => e.key)).toEqual(["big"])
    expect(big.history.compactRevision).toBe(1)
  })

  test("a reply stops at a revision boundary: a transaction's events are never split", () => {
    const machine = new KvStateMachine()
    const run = clerk(machine)
    run({ op: "put", key: "a", value: "1" })
    run({
      op: "txn",
      key: "a",
      compare: [],
      success: ["b", "c", "d"].map((key) => ({ op: "put", key, value: key })),
      failure: [],
    })
    run({ op: "put", key: "e", value: "1" })
    const first = answerPoll(machine, poll(0, { maxEvents: 2 }))
    // Revision 1, then the whole of revision 2 (three events), then the bound stops it.
    expect(first.ok && first.events.map((e) => `${e.key}@${e.modRevision}`)).toEqual(["a@1", "b@2", "c@2", "d@2"])
    expect(first.ok && first.revision).toBe(2)
    const rest = answerPoll(machine, poll(2, { maxEvents: 2 }))
    expect(rest.ok && rest.events.map((e) => e.key)).toEqual(["e"])
  })

  test("moves through snapshots; a current value is stored once; older snapshots load compacted", () => {
    const { machine, run } = filled({}, 50)
    run({ op: "delete", key: "k1" })
    const restored = KvStateMachine.restore(machine.snapshot())
    expect(restored.history.all()).toEqual(machine.history.all())
    expect(restored.history.compactRevision).toBe(0)

    // A store of 1,000 keys written once with 100-byte values: its history holds no value again.
    const sizeWith = (limits: Partial<KvLimits>) => {
      const store = new KvStateMachine(limits)
      const put = clerk(store)
      for (let i = 0; i < 1_000; i++) put({ op: "put", key: `key${i}`, value: `${i}`.padEnd(100, ".") })
      return store.snapshot().length
    }
    expect(sizeWith({}) - sizeWith({ watchHistoryEvents: 1 })).toBeLessThan(20 * 1_000)

    const v2 = new Encoder().encode([2, ["a", "x", 3, 7, 2], [0, []], 9])
    const old = KvStateMachine.restore(v2)
    expect(old.history.compactRevision).toBe(9)
    expect(answerPoll(old, poll(8))).toMatchObject({ ok: false, error: "Compacted", compactRevision: 9 })
    expect(answerPoll(old, poll(9))).toEqual({ ok: true, events: [], revision: 9 })
  })

  test("a run of appends costs a snapshot what was appended, not every intermediate value", () => {
    const machine = new KvStateMachine()
    const run = clerk(machine)
    for (let i = 0; i < 1_000; i++) run({ op: "append", key: `k${i % 2}`, value: `+${i}`.padEnd(10, ".") })
    run({ op: "delete", key: "k0" })
    run({ op: "put", key: "k0", value: "fresh" })
    // Without the compression the 1,000 events would carry about 2.5 MB of intermediate values.
    const bytes = machine.snapshot()
    expect(bytes.length).toBeLessThan(40 * 1_000)
    const restored = KvStateMachine.restore(bytes)
    expect(restored.history.all()).toEqual(machine.history.all())
    expect(restored.get("k1")).toBe(machine.get("k1"))
  })

  test("with the default bounds, 20,000 writes of one key leave a snapshot within the byte bound", () => {
    const { machine } = filled({}, 20_000, () => "x")
    expect(machine.history.size).toBe(10_000)
    expect(machine.snapshot().length).toBeLessThan(machine.limits.watchHistoryBytes)
  })

  test("a corrupt history is refused", () => {
    const bad = new Encoder().encode([3, [], [0, []], 2, [0, [5, 0, "a", "x", 1, 1]]])
    expect(() => KvStateMachine.restore(bad)).toThrow(/watch history event 0 is malformed/)
  })
})

describe("held polls", () => {
  const service = (machine: () => KvStateMachine) => ({
    answer: (request: WatchPollRequest): PollAnswer<WatchPollAnswer | "wrongLeader" | "busy"> => {
      const answer = answerPoll(machine(), request)
      return { reply: answer, empty: nothingToSend(answer), revision: machine().revision }
    },
    wrongLeader: () => "wrongLeader" as const,
    busy: () => "busy" as const,
  })

  test("a quiet key's poll is not made Compacted by other keys' writes while it waits", () => {
    const machine = new KvStateMachine({ watchHistoryEvents: 10 })
    const run = clerk(machine)
    const held = new HeldPolls(service(() => machine))
    const replies: unknown[] = []
    held.poll(poll(0, { key: "quiet", prefix: false, waitMs: 1_000 }), "w", 0, (r) => replies.push(r))
    for (let i = 0; i < 50; i++) {
      const before = machine.revision
      run({ op: "put", key: `busy${i}`, value: "x" })
      held.changed(0, machine.history.since(before))
    }
    expect(replies).toEqual([])
    expect(machine.history.compactRevision).toBe(40)
    held.sweep(1_000, true)
    expect(replies).toEqual([{ ok: true, events: [], revision: 50 }])
  })

  test("a poll is answered when its range changes; resends keep the wait; beyond the bound, come back later", () => {
    const machine = new KvStateMachine()
    const run = clerk(machine)
    const held = new HeldPolls(
      service(() => machine),
      { maxHeld: 2, maxWaitMs: 5_000 },
    )
    const got: unknown[] = []
    held.poll(poll(0, { key: "a", prefix: false, waitMs: 1_000 }), "w1", 0, (r) => got.push(["first", r]))
    // The same poll resent later: it replaces the reply callback, not the deadline.
    held.poll(poll(0, { key: "a", prefix: false, waitMs: 1_000 }), "w1", 900, (r) => got.push(["resent", r]))
    held.poll(poll(0, { key: "dir/", waitMs: 60_000, watcher: 2 }), "w2", 0, (r) => got.push(["prefix", r]))
    held.poll(poll(0, { key: "z", prefix: false, waitMs: 1_000, watcher: 3 }), "w3", 0, (r) => got.push(["full", r]))
    expect(got).toEqual([["full", "busy"]])
    expect(held.size).toBe(2)

    run({ op: "put", key: "dir/x", value: "1" })
    held.changed(0, machine.history.since(0))
    expect(got[1]).toEqual(["prefix", { ok: true, events: [expect.objectContaining({ key: "dir/x" })], revision: 1 }])
    held.sweep(1_000, true)
    expect(got[2]).toEqual(["resent", { ok: true, events: [], revision: 1 }])
    expect(held.size).toBe(0)

    held.poll(poll(1, { key: "a", prefix: false, waitMs: 1_000, poll: 2 }), "w1", 2_000, (r) =>
      got.push(["deposed", r]),
    )
    // A late duplicate of the watcher's earlier poll neither replaces the held one nor is answered.
    held.poll(poll(0, { key: "a", prefix: false, waitMs: 1_000, poll: 1 }), "w1", 2_050, (r) => got.push(["late", r]))
    expect(held.size).toBe(1)
    held.sweep(2_100, false)
    expect(got.slice(3)).toEqual([["deposed", "wrongLeader"]])
  })
})
