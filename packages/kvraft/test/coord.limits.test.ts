/**
 * Proves that the coordination commands stay within their bounds and refuse whole: a transaction
 * whose gets would read more than one value's worth is refused before it writes anything; too many
 * ops are refused before the log; snapshots of before revisions existed still load.
 */
import { describe, expect, test } from "bun:test"
import { Encoder } from "@msgpack/msgpack"
import { type KvOp, KvStateMachine } from "../src/stateMachine/index.ts"

const apply = (machine: KvStateMachine, seq: number, op: KvOp) =>
  machine.apply({ clientId: 3, seq, ackedBelow: seq, nowMs: 1_000, op })

describe("coordination limits", () => {
  test("a transaction whose gets would read over maxValueBytes is refused with nothing written", () => {
    const machine = new KvStateMachine({ maxValueBytes: 100 })
    apply(machine, 1, { op: "put", key: "a", value: "x".repeat(60) })
    const txn: KvOp = {
      op: "txn",
      key: "a",
      compare: [],
      success: [
        { op: "put", key: "b", value: "y".repeat(60) },
        { op: "get", key: "a" },
        { op: "get", key: "b" },
      ],
      failure: [],
    }
    expect(apply(machine, 2, txn)).toMatchObject({ ok: false, error: "InvalidRequest" })
    expect(machine.getEntry("b")).toBeUndefined()
    expect(machine.revision).toBe(1)
    // A delete earlier in the branch is seen: nothing left to read.
    const smaller: KvOp = { ...txn, success: [{ op: "delete", key: "a" }, { op: "get", key: "a" }, ...txn.success] }
    expect(apply(machine, 3, smaller)).toMatchObject({ ok: true, reply: { kind: "txn", succeeded: true, revision: 2 } })
  })

  test("too many ops in a transaction are refused before the log", () => {
    const machine = new KvStateMachine()
    const ops = Array.from({ length: 129 }, (_, i) => ({ op: "get", key: `k${i}` }) as const)
    expect(machine.precheck({ op: "txn", key: "k0", compare: [], success: ops, failure: [] })).toMatchObject({
      ok: false,
      error: "InvalidRequest",
    })
  })

  test("a transaction branch that writes one key twice is refused before the log; reads and other branches may repeat it", () => {
    const machine = new KvStateMachine()
    const twice = {
      op: "txn",
      key: "k",
      compare: [],
      success: [
        { op: "put", key: "k", value: "a" },
        { op: "get", key: "k" },
        { op: "delete", key: "k" },
      ],
      failure: [{ op: "put", key: "k", value: "b" }],
    } as const
    expect(machine.precheck(twice)).toMatchObject({ ok: false, error: "InvalidRequest" })
    expect(machine.apply({ clientId: 1, seq: 1, ackedBelow: 1, nowMs: 0, op: twice })).toMatchObject({
      ok: false,
      error: "InvalidRequest",
    })
    expect(machine.revision).toBe(0)
    const once = {
      ...twice,
      success: [
        { op: "put", key: "k", value: "a" },
        { op: "get", key: "k" },
      ],
    } as const
    expect(machine.precheck(once)).toBeUndefined()
    // The history round-trips through a snapshot unchanged: one event per key and revision.
    machine.apply({ clientId: 1, seq: 2, ackedBelow: 2, nowMs: 0, op: once })
    const restored = KvStateMachine.restore(machine.snapshot())
    expect(restored.getEntry("k")).toEqual(machine.getEntry("k"))
  })

  test("a snapshot from before revisions loads as keys written once at revision 1, and goes on from there", () => {
    const old = new Encoder().encode([1, ["a", "1", "b", "2"], [0, []]])
    const machine = KvStateMachine.restore(old)
    expect(machine.getEntry("a")).toEqual({ value: "1", version: 1, modRevision: 1, createRevision: 1 })
    expect(machine.list("", { keysOnly: true }).entries.map((e) => e.key)).toEqual(["a", "b"])
    apply(machine, 1, { op: "put", key: "a", value: "again" })
    expect(machine.getEntry("a")).toEqual({ value: "again", version: 2, modRevision: 2, createRevision: 1 })
    expect(KvStateMachine.restore(machine.snapshot()).snapshot()).toEqual(machine.snapshot())
  })
})
