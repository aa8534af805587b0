/**
 * Proves that a large store (thousands of keys, non-ASCII and astral keys, metadata, sessions,
 * watch history and leases) snapshots in the byte-laid-out version 5 and restores to the same
 * state: the restored machine's snapshot is byte-identical, every key and its metadata is there,
 * retried commands get their first answers, and both machines answer the next commands alike.
 * The version 4 (msgpack) form of the same state still loads; damaged version 5 bytes are refused.
 * Replay a run with KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { Encoder } from "@msgpack/msgpack"
import { type KvCommand, type KvOp, type KvResult, KvStateMachine } from "../src/stateMachine/index.ts"
import { binaryFromKeys } from "../src/stateMachine/kvStateMachine.ts"

const seed = seedFromEnv()
const seededRandom = (start: number) => new SeededRandom(start)

// Characters of 1 to 4 UTF-8 bytes, and the BMP characters above the surrogates that UTF-16 order
// and byte order disagree on.
const alphabet = ["a", "b", "z", "/", "é", "ж", "中", "\u{1F600}", "\uE000", "\uFFFD", "0"]

const makeCommands = (random: ReturnType<typeof seededRandom>, count: number) => {
  const word = (max: number) => {
    let s = ""
    for (let n = 1 + random.int(max); n > 0; n--) s += alphabet[random.int(alphabet.length)]
    return s
  }
  const seqs = new Map<number, number>()
  let nowMs = 1_700_000_000_000
  let leases = 0
  const commands: KvCommand[] = []
  for (let i = 0; i < count; i++) {
    const clientId = 1 + random.int(40)
    const seq = (seqs.get(clientId) ?? 0) + 1
    seqs.set(clientId, seq)
    const key = `${word(2)}/${word(6)}`
    const roll = random.int(100)
    const op: KvOp =
      roll < 55
        ? { op: "put", key, value: word(40) }
        : roll < 65
          ? { op: "append", key, value: word(8) }
          : roll < 72
            ? { op: "delete", key }
            : roll < 76
              ? { op: "leaseGrant", key: "", ttlMs: 60_000 }
              : roll < 86 && leases > 0
                ? { op: "put", key, value: word(10), lease: 1 + random.int(leases) }
                : roll < 88 && leases > 0
                  ? { op: "leaseRevoke", key: "", lease: 1 + random.int(leases) }
                  : {
                      op: "txn",
                      key,
                      compare: [{ key, target: "version", cmp: ">", value: 0 }],
                      success: [
                        { op: "put", key, value: word(5) },
                        { op: "get", key: `${key}x` },
                      ],
                      failure: [{ op: "put", key: `${key}!`, value: word(5) }],
                    }
    if (op.op === "leaseGrant") leases++
    nowMs += random.int(50)
    commands.push({ clientId, seq, ackedBelow: Math.max(0, seq - 3), nowMs, op } as KvCommand)
  }
  return commands
}

const everything = (machine: KvStateMachine) => {
  const entries = []
  let after: string | undefined
  for (;;) {
    const page = machine.list("", { after })
    entries.push(...page.entries)
    if (!page.more) return entries
    after = page.entries.at(-1)!.key
  }
}

/** The version 4 form of a machine's state, as servers before version 5 wrote it. */
const version4Bytes = (machine: KvStateMachine): Uint8Array => {
  const flat = everything(machine).flatMap((e) => [e.key, e.value!, e.createRevision, e.modRevision, e.version])
  return new Encoder().encode([
    4,
    flat,
    machine.sessions.toSnapshot(),
    machine.revision,
    machine.history.toSnapshot((key) => machine.getEntry(key)?.modRevision),
    machine.leases.toSnapshot(),
  ])
}

test("a large store with sessions, history and leases restores to the same state from its version 5 snapshot", () => {
  console.log(`restore large: seed ${seed} (replay with KV_SEED=${seed})`)
  const random = seededRandom(seed)
  const commands = makeCommands(random, 12_000)
  const original = new KvStateMachine({ watchHistoryEvents: 2_000 })
  const results: KvResult[] = commands.map((cmd) => original.apply(cmd))
  expect(original.size()).toBeGreaterThanOrEqual(binaryFromKeys)
  expect(original.leases.size).toBeGreaterThan(0)
  expect(original.history.size).toBeGreaterThan(0)

  const bytes = original.snapshot()
  expect(bytes[0]).toBe(0xc1)
  expect(bytes[1]).toBe(5)
  const restored = KvStateMachine.restore(bytes, { watchHistoryEvents: 2_000 })

  expect(restored.snapshot()).toEqual(bytes)
  expect(restored.revision).toBe(original.revision)
  expect(everything(restored)).toEqual(everything(original))
  expect(restored.history.all()).toEqual(original.history.all())
  expect(restored.leases.all()).toEqual(original.leases.all())
  expect(restored.sessions.count()).toBe(original.sessions.count())

  // A client's last command, retried, gets its first answer without being applied again; older
  // retries get whatever the original machine answers them (Stale below the client's floor).
  const lastOfClient = new Map(commands.map((cmd, i) => [cmd.clientId, i]))
  for (const i of lastOfClient.values()) expect(restored.apply(commands[i]!)).toEqual(results[i]!)
  for (const i of lastOfClient.values()) original.apply(commands[i]!)
  for (let i = commands.length - 40; i < commands.length; i++) {
    expect(restored.apply(commands[i]!)).toEqual(original.apply(commands[i]!))
  }
  // And both machines go on alike.
  for (const cmd of makeCommands(seededRandom(seed + 1), 500).map((c) => ({ ...c, clientId: c.clientId + 100 }))) {
    expect(restored.apply(cmd)).toEqual(original.apply(cmd))
  }
  expect(restored.snapshot()).toEqual(original.snapshot())
})

test("restored a slice at a time, a large store is the same state, and no state is given before the last slice", () => {
  const machine = new KvStateMachine({ watchHistoryEvents: 2_000 })
  for (const cmd of makeCommands(seededRandom(seed), 6_000)) machine.apply(cmd)
  const bytes = machine.snapshot()
  expect(bytes[0]).toBe(0xc1)
  const job = KvStateMachine.beginRestore(bytes, { watchHistoryEvents: 2_000 }, 100)
  let steps = 1
  let restored = job.step()
  while (restored === undefined) {
    steps++
    restored = job.step()
  }
  // The entries indexed 100 per slice, after the table's pages are written in slices of their own.
  expect(steps).toBeGreaterThan(machine.size() / 100)
  expect(job.step()).toBe(restored)
  expect(restored.snapshot()).toEqual(bytes)
  expect(everything(restored)).toEqual(everything(machine))
  expect(restored.history.all()).toEqual(machine.history.all())

  // Damage found in a later slice is the same error a whole restore gives.
  const damaged = bytes.slice(0, bytes.length - 3)
  const sliced = KvStateMachine.beginRestore(damaged, undefined, 100)
  expect(() => {
    while (sliced.step() === undefined) {}
  }).toThrow(/corrupt snapshot/)
})

test("the version 4 form of a large store still loads, to a machine whose version 5 snapshot matches", () => {
  const machine = new KvStateMachine()
  for (const cmd of makeCommands(seededRandom(seed), 3_000)) machine.apply(cmd)
  const fromOld = KvStateMachine.restore(version4Bytes(machine))
  expect(fromOld.snapshot()).toEqual(machine.snapshot())
})

test("a store holding a lone surrogate (which UTF-8 cannot carry) falls back to version 4 and round-trips", () => {
  const machine = new KvStateMachine()
  const commands = makeCommands(seededRandom(seed), 2_000)
  commands.push({
    clientId: 999,
    seq: 1,
    ackedBelow: 0,
    nowMs: 1_800_000_000_000,
    op: { op: "put", key: "\uD800k", value: "v\uDC00" },
  })
  for (const cmd of commands) machine.apply(cmd)
  const bytes = machine.snapshot()
  expect(bytes[0]).not.toBe(0xc1)
  const restored = KvStateMachine.restore(bytes)
  expect(restored.get("\uD800k")).toBe("v\uDC00")
  expect(restored.snapshot()).toEqual(bytes)
})

test("damaged version 5 snapshots are refused with a clear error", () => {
  const machine = new KvStateMachine()
  for (let i = 0; i < binaryFromKeys; i++) {
    machine.apply({
      clientId: 1,
      seq: i + 1,
      ackedBelow: i,
      nowMs: 1_000 + i,
      op: { op: "put", key: `k${1000 + i}`, value: "v" },
    })
  }
  const bytes = machine.snapshot()
  expect(bytes[0]).toBe(0xc1)
  const withByte = (at: number, value: number) => {
    const copy = bytes.slice()
    copy[at] = value
    return copy
  }
  const headBytes = new DataView(bytes.buffer, bytes.byteOffset).getUint32(2, true)
  const firstKeyAt = 6 + headBytes + 1
  const cases: [Uint8Array, RegExp][] = [
    [bytes.subarray(0, 4), /shorter than its header/],
    [withByte(1, 6), /unsupported snapshot version 6/],
    [withByte(5, 0xff), /head runs past the end/],
    [bytes.subarray(0, bytes.length - 3), /corrupt snapshot/],
    // The first key "k1000" becomes "k9000": above the second, out of order.
    [withByte(firstKeyAt + 1, "9".charCodeAt(0)), /out of order/],
    [new Uint8Array([...bytes, 1, 0x41, 1, 0x42, 1, 0, 1]), /corrupt snapshot/],
  ]
  for (const [damaged, message] of cases) {
    expect(() => KvStateMachine.restore(damaged)).toThrow(message)
  }
})

test("restoring 200,000 keys of 100 bytes takes seconds, not minutes (a guard against pathological restores)", () => {
  const machine = new KvStateMachine()
  const value = "v".repeat(100)
  for (let i = 0; i < 200_000; i++) {
    machine.apply({
      clientId: 1 + (i % 20),
      seq: 1 + Math.floor(i / 20),
      ackedBelow: Math.floor(i / 20),
      nowMs: 1_000 + i,
      op: { op: "put", key: `key${(i * 7919) % 200_000}`, value },
    })
  }
  const bytes = machine.snapshot()
  const started = performance.now()
  const restored = KvStateMachine.restore(bytes)
  const elapsedMs = performance.now() - started
  console.log(`restore of 200,000 keys: ${elapsedMs.toFixed(0)} ms, ${bytes.length} bytes`)
  expect(restored.size()).toBe(200_000)
  // About 0.5 s on a loaded 2-core machine; the bound only catches a restore gone quadratic.
  expect(elapsedMs).toBeLessThan(30_000)
}, 120_000)
