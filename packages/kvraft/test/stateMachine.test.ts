import { describe, expect, test } from "bun:test"
import { encode } from "@msgpack/msgpack"
import {
  decodeCommand,
  encodeCommand,
  type KvCommand,
  type KvOp,
  KvStateMachine,
  utf8ByteLength,
} from "../src/stateMachine/index.ts"

/** A clerk that waits for each result before the next command, as the lab clerk does. */
const sequentialClerk = (machine: KvStateMachine, clientId = 7, nowMs = 1_000) => {
  let seq = 0
  return (op: KvOp) => {
    seq += 1
    return machine.apply({ clientId, seq, ackedBelow: seq, nowMs, op })
  }
}

describe("put, append, delete and get", () => {
  test("get of an absent key is the empty string", () => {
    const machine = new KvStateMachine()
    expect(machine.get("nope")).toBe("")
    expect(machine.size()).toBe(0)
  })

  test("put replaces, append appends, delete removes", () => {
    const machine = new KvStateMachine()
    const run = sequentialClerk(machine)
    expect(run({ op: "put", key: "k", value: "a" })).toEqual({ ok: true })
    expect(machine.get("k")).toBe("a")
    expect(run({ op: "put", key: "k", value: "b" })).toEqual({ ok: true })
    expect(machine.get("k")).toBe("b")
    expect(run({ op: "append", key: "k", value: "c" })).toEqual({ ok: true })
    expect(machine.get("k")).toBe("bc")
    expect(machine.size()).toBe(1)
    expect(run({ op: "delete", key: "k" })).toEqual({ ok: true })
    expect(machine.get("k")).toBe("")
    expect(machine.size()).toBe(0)
  })

  test("append to an absent key acts as put", () => {
    const machine = new KvStateMachine()
    const run = sequentialClerk(machine)
    expect(run({ op: "append", key: "fresh", value: "x" })).toEqual({ ok: true })
    expect(machine.get("fresh")).toBe("x")
  })

  test("delete of an absent key succeeds and changes nothing", () => {
    const machine = new KvStateMachine()
    const run = sequentialClerk(machine)
    run({ op: "put", key: "other", value: "v" })
    expect(run({ op: "delete", key: "absent" })).toEqual({ ok: true })
    expect(machine.size()).toBe(1)
    expect(machine.get("other")).toBe("v")
  })

  test("the empty key and the empty value are ordinary", () => {
    const machine = new KvStateMachine()
    const run = sequentialClerk(machine)
    run({ op: "put", key: "", value: "root" })
    run({ op: "put", key: "e", value: "" })
    expect(machine.get("")).toBe("root")
    expect(machine.size()).toBe(2)
  })
})

describe("limits give typed errors and change nothing", () => {
  test("a key over maxKeyBytes is KeyTooLarge for every operation", () => {
    const machine = new KvStateMachine({ maxKeyBytes: 4 })
    const run = sequentialClerk(machine)
    for (const op of [
      { op: "put", key: "12345", value: "v" },
      { op: "append", key: "12345", value: "v" },
      { op: "delete", key: "12345" },
    ] as const) {
      const result = run(op)
      expect(result.ok).toBe(false)
      if (!result.ok) expect(result.error).toBe("KeyTooLarge")
    }
    expect(machine.size()).toBe(0)
    expect(run({ op: "put", key: "1234", value: "v" })).toEqual({ ok: true })
  })

  test("a transaction branch writing a key twice is refused, naming the first key written again", () => {
    const machine = new KvStateMachine()
    const run = sequentialClerk(machine)
    const put = (key: string) => ({ op: "put", key, value: "v" }) as const
    const refused = run({
      op: "txn",
      key: "",
      compare: [],
      success: [put("z"), put("b"), { op: "get", key: "a" }, put("a"), { op: "delete", key: "b" }, put("z"), put("a")],
      failure: [],
    })
    expect(refused).toEqual({
      ok: false,
      error: "InvalidRequest",
      message: 'a transaction branch writes "b" more than once',
    })
    expect(machine.size()).toBe(0)
    const reads = run({
      op: "txn",
      key: "",
      compare: [],
      success: [{ op: "get", key: "a" }, put("a"), { op: "get", key: "a" }, put("b")],
      failure: [put("a"), put("c")],
    })
    expect(reads).toMatchObject({ ok: true })
    expect(machine.get("a")).toBe("v")
  })

  test("key size is counted in UTF-8 bytes", () => {
    const machine = new KvStateMachine({ maxKeyBytes: 4 })
    const run = sequentialClerk(machine)
    expect(run({ op: "put", key: "éé", value: "v" })).toEqual({ ok: true }) // 4 bytes
    expect(run({ op: "put", key: "ééa", value: "v" })).toMatchObject({ ok: false, error: "KeyTooLarge" }) // 5 bytes
    expect(run({ op: "put", key: "😀", value: "v" })).toEqual({ ok: true }) // 4 bytes
  })

  test("a put over maxValueBytes is ValueTooLarge and leaves the old value", () => {
    const machine = new KvStateMachine({ maxValueBytes: 8 })
    const run = sequentialClerk(machine)
    run({ op: "put", key: "k", value: "old" })
    expect(run({ op: "put", key: "k", value: "123456789" })).toMatchObject({ ok: false, error: "ValueTooLarge" })
    expect(machine.get("k")).toBe("old")
    expect(run({ op: "put", key: "k", value: "12345678" })).toEqual({ ok: true })
  })

  test("an append is checked on the value it would produce", () => {
    const machine = new KvStateMachine({ maxValueBytes: 8 })
    const run = sequentialClerk(machine)
    run({ op: "put", key: "k", value: "12345" })
    expect(run({ op: "append", key: "k", value: "6789" })).toMatchObject({ ok: false, error: "ValueTooLarge" })
    expect(machine.get("k")).toBe("12345")
    expect(run({ op: "append", key: "k", value: "678" })).toEqual({ ok: true })
    expect(machine.get("k")).toBe("12345678")
    expect(run({ op: "append", key: "absent", value: "123456789" })).toMatchObject({
      ok: false,
      error: "ValueTooLarge",
    })
    expect(machine.get("absent")).toBe("")
    expect(machine.size()).toBe(1)
  })

  test("an append that completes a surrogate pair is counted as one 4-byte character", () => {
    const machine = new KvStateMachine({ maxValueBytes: 4 })
    const run = sequentialClerk(machine)
    const [high, low] = ["😀".charAt(0), "😀".charAt(1)]
    expect(run({ op: "put", key: "k", value: high })).toEqual({ ok: true }) // alone: 3 bytes
    expect(run({ op: "append", key: "k", value: low })).toEqual({ ok: true }) // joined: 4 bytes
    expect(machine.get("k")).toBe("😀")
  })

  test("precheck reports only errors certain whatever the state (a replica's state may lag), without applying", () => {
    const machine = new KvStateMachine({ maxValueBytes: 4, maxKeyBytes: 2 })
    const run = sequentialClerk(machine)
    run({ op: "put", key: "k", value: "abc" })
    // Too large with the current value, but the value may have been replaced already: apply decides.
    expect(machine.precheck({ op: "append", key: "k", value: "de" })).toBeUndefined()
    expect(run({ op: "append", key: "k", value: "de" })).toMatchObject({ error: "ValueTooLarge" })
    expect(machine.precheck({ op: "append", key: "k", value: "abcde" })).toMatchObject({ error: "ValueTooLarge" })
    expect(machine.precheck({ op: "put", key: "k", value: "abcde" })).toMatchObject({ error: "ValueTooLarge" })
    expect(machine.precheck({ op: "delete", key: "abc" })).toMatchObject({ error: "KeyTooLarge" })
    expect(machine.get("k")).toBe("abc")
  })

  test("the default limits are 1 KiB keys and 1 MiB values", () => {
    const machine = new KvStateMachine()
    expect(machine.limits).toEqual({
      maxKeyBytes: 1024,
      maxValueBytes: 1024 * 1024,
      sessionTtlMs: 3_600_000,
      maxOutstandingPerClient: 1024,
      maxLogTimeStepMs: 30_000,
      maxExpiredSessions: 10_000,
      watchHistoryEvents: 10_000,
      watchHistoryBytes: 8 * 1024 * 1024,
    })
    const run = sequentialClerk(machine)
    expect(run({ op: "put", key: "k".repeat(1024), value: "v".repeat(1024 * 1024) })).toEqual({ ok: true })
    expect(run({ op: "append", key: "k".repeat(1024), value: "v" })).toMatchObject({ error: "ValueTooLarge" })
  })

  test("nonsense limits are refused", () => {
    expect(() => new KvStateMachine({ maxValueBytes: 0 })).toThrow(/maxValueBytes/)
    expect(() => new KvStateMachine({ sessionTtlMs: Number.NaN })).toThrow(/sessionTtlMs/)
  })

  test("utf8ByteLength agrees with TextEncoder", () => {
    const samples = ["", "abc", "é", "€", "😀", "a😀b", "\ud800", "x\udc00y", "\ud83d\ud83d\ude00", "ß中文🎉"]
    for (const text of samples) expect(utf8ByteLength(text)).toBe(new TextEncoder().encode(text).length)
  })
})

describe("command encoding", () => {
  const commands: KvCommand[] = [
    { clientId: 2 ** 53 - 1, seq: 1, ackedBelow: 1, nowMs: 1_700_000_000_123, op: { op: "put", key: "k", value: "v" } },
    { clientId: 1, seq: 99, ackedBelow: 42, nowMs: 0, op: { op: "append", key: "ключ", value: "😀" } },
    { clientId: 123_456_789, seq: 5, ackedBelow: 5, nowMs: 12.5, op: { op: "delete", key: "" } },
  ]

  test("decodeCommand inverts encodeCommand", () => {
    for (const cmd of commands) expect(decodeCommand(encodeCommand(cmd))).toEqual(cmd)
  })

  test("a small put is a compact array", () => {
    const bytes = encodeCommand({
      clientId: 4_503_599_627_370_495,
      seq: 1000,
      ackedBelow: 999,
      nowMs: 1_700_000_000_000,
      op: { op: "put", key: "key", value: "value" },
    })
    // array header + uint64 id + 2 × uint16 + uint64 time + op code + 2 short strings
    expect(bytes.length).toBeLessThanOrEqual(1 + 9 + 3 + 3 + 9 + 1 + 4 + 6)
  })

  test("encoded bytes are not overwritten by the next encode", () => {
    const first = encodeCommand(commands[0]!)
    const copy = first.slice()
    encodeCommand(commands[1]!)
    expect(first).toEqual(copy)
  })

  test("bad bytes decode to undefined and never throw", () => {
    const good = encodeCommand(commands[0]!)
    const bad: Uint8Array[] = [
      new Uint8Array(),
      new Uint8Array([0xc1]),
      good.subarray(0, good.length - 1),
      new Uint8Array([...good, 0]),
      encode({ clientId: 1 }),
      encode([1, 1, 1, 0, 0, "k"]), // put without a value
      encode([1, 1, 1, 0, 2, "k", "v"]), // delete with a value
      encode([1, 1, 1, 0, 3, "k", "v"]), // unknown op code
      encode([0, 1, 1, 0, 0, "k", "v"]), // client id 0
      encode([1, 0, 1, 0, 0, "k", "v"]), // seq 0
      encode([1, 1, 0, 0, 0, "k", "v"]), // ackedBelow 0
      encode([1.5, 1, 1, 0, 0, "k", "v"]),
      encode([2 ** 60, 1, 1, 0, 0, "k", "v"]),
      encode([1, 1, 1, -1, 0, "k", "v"]),
      encode([1, 1, 1, 0, 0, 7, "v"]),
      encode([1, 1, 1, 0, 0, "k", new Uint8Array([1])]),
      encode(null),
    ]
    for (const bytes of bad) expect(decodeCommand(bytes)).toBeUndefined()
    // Deterministic garbage: every prefix and a few bit flips of a good command.
    for (let i = 0; i < good.length; i++) {
      expect(() => decodeCommand(good.subarray(0, i))).not.toThrow()
      for (let bit = 0; bit < 8; bit++) {
        const flipped = good.slice()
        flipped[i]! ^= 1 << bit
        expect(() => decodeCommand(flipped)).not.toThrow()
      }
    }
  })
})

describe("snapshots", () => {
  test("restore gives back the same data and sessions", () => {
    const machine = new KvStateMachine()
    const run = sequentialClerk(machine, 11)
    run({ op: "put", key: "a", value: "1" })
    run({ op: "append", key: "a", value: "2" })
    run({ op: "put", key: "b", value: "ü😀" })
    // Client 12 has seq 1 and 3 applied but unacknowledged.
    machine.apply({ clientId: 12, seq: 3, ackedBelow: 1, nowMs: 2_000, op: { op: "append", key: "c", value: "3" } })
    machine.apply({ clientId: 12, seq: 1, ackedBelow: 1, nowMs: 2_000, op: { op: "append", key: "c", value: "1" } })

    const restored = KvStateMachine.restore(machine.snapshot())
    expect(restored.get("a")).toBe("12")
    expect(restored.get("b")).toBe("ü😀")
    expect(restored.get("c")).toBe("31")
    expect(restored.size()).toBe(3)
    expect(restored.sessions.count()).toBe(2)
    expect(restored.snapshot()).toEqual(machine.snapshot())
    // A retry of seq 3 at the restored replica is answered, not applied again.
    const retry = {
      clientId: 12,
      seq: 3,
      ackedBelow: 1,
      nowMs: 2_500,
      op: { op: "append", key: "c", value: "3" },
    } as const
    expect(restored.apply(retry)).toEqual({ ok: true })
    expect(restored.get("c")).toBe("31")
  })

  test("an empty state machine has a tiny snapshot", () => {
    expect(new KvStateMachine().snapshot().length).toBeLessThan(16)
  })

  test("Snapshot size (TestSnapshotSize4B): 200 rounds of put/get on one key stay under 500 bytes", () => {
    // The lab's bound counts the store alone; the watch history (400 overwritten values here) is
    // bounded by its own limits (watch.history.test.ts), so it is kept to one event.
    const machine = new KvStateMachine({ watchHistoryEvents: 1 })
    const run = sequentialClerk(machine, 2 ** 52 + 12_345, 1_700_000_000_000)
    for (let i = 0; i < 200; i++) {
      // Gets go through ReadIndex, not the log; only the puts reach the state machine.
      expect(run({ op: "put", key: "x", value: "0" })).toEqual({ ok: true })
      expect(machine.get("x")).toBe("0")
      expect(run({ op: "put", key: "x", value: "1" })).toEqual({ ok: true })
      expect(machine.get("x")).toBe("1")
    }
    const size = machine.snapshot().length
    console.log(`snapshot after 200 × (put, get, put, get) on one key: ${size} bytes`)
    expect(size).toBeLessThanOrEqual(500)
  })

  test("corrupt snapshots are refused with a clear error", () => {
    const good = new KvStateMachine()
    sequentialClerk(good)({ op: "put", key: "k", value: "v" })
    const bytes = good.snapshot()
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(), /corrupt snapshot/],
      [bytes.subarray(0, bytes.length - 2), /corrupt snapshot/],
      [encode([9, [], [0, []], 0, [0, []]]), /unsupported snapshot version 9/],
      [encode([1, ["k"], [0, []]]), /key\/value pairs/],
      [encode([1, ["k", 5], [0, []]]), /pair of strings/],
      [encode([1, [], [0, [[0, 1, 0, [], []]]]]), /clientId/],
      [encode([1, [], [0, [[3, 1, 0, [-1], []]]]]), /offset/],
      [encode([1, [], [0, [[3, 1, 0, [], [[0, "", "m"]]]]]]), /error result/],
      [encode([1, [], [0, [[3, 1, 0, [], [[0, "Stale", 7]]]]]]), /error result/],
      [
        encode([
          1,
          [],
          [
            0,
            [
              [3, 1, 0, [], []],
              [3, 2, 0, [], []],
            ],
          ],
        ]),
        /appears twice/,
      ],
      [encode([1, [], "sessions"]), /corrupt sessions snapshot/],
    ]
    for (const [corrupt, message] of cases) {
      expect(() => KvStateMachine.restore(corrupt)).toThrow(message)
    }
  })
})
