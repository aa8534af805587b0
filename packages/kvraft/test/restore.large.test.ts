/**
 * Proves that a large store (thousands of keys, non-ASCII and astral keys, metadata, sessions,
 * watch history and leases) snapshots in the byte-laid-out version 6 (the entries, then their index)
 * and restores to the same state: the restored machine's snapshot is byte-identical, every key and
 * its metadata is there, retried commands get their first answers, and both machines answer the
 * next commands alike. A version 6 restore reads the stored index instead of building it (one step,
 * wherever the bytes lie in memory); the version 5 (no index) and version 4 (msgpack) forms of the
 * same state still load; damaged bytes of either binary version, their index included, are refused.
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

/** The version 5 form of a version 6 snapshot, as servers before version 6 wrote it: without the index. */
const version5Of = (bytes: Uint8Array): Uint8Array => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
  const entriesAt = 6 + view.getUint32(2, true)
  const entriesBytes = view.getFloat64(bytes.length - 16, true)
  const old = bytes.slice(0, entriesAt + entriesBytes)
  old[1] = 5
  return old
}

/** Runs a sliced restore to its end: the machine and the number of steps it took. */
const restoreInSlices = (bytes: Uint8Array, entriesPerSlice: number) => {
  const job = KvStateMachine.beginRestore(bytes, { watchHistoryEvents: 2_000 }, entriesPerSlice)
  let steps = 1
  let restored = job.step()
  while (restored === undefined) {
    steps++
    restored = job.step()
  }
  expect(job.step()).toBe(restored)
  return { restored, steps }
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

test("a large store with sessions, history and leases restores to the same state from its version 6 snapshot", () => {
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
  expect(bytes[1]).toBe(6)
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

test("a version 6 snapshot restores its index without building it, read where it lies or copied; version 5 builds it", () => {
  const machine = new KvStateMachine({ watchHistoryEvents: 2_000 })
  for (const cmd of makeCommands(seededRandom(seed), 6_000)) machine.apply(cmd)
  const bytes = machine.snapshot()
  expect(bytes[0]).toBe(0xc1)
  expect(bytes[1]).toBe(6)

  // The same state without its index, as older servers wrote it: the entries indexed 100 per slice,
  // after the table's pages are written in slices of their own; its next snapshot has the index.
  const old = version5Of(bytes)
  const built = restoreInSlices(old, 100)
  expect(built.steps).toBeGreaterThan(machine.size() / 100)
  expect(built.restored.snapshot()).toEqual(bytes)
  expect(everything(built.restored)).toEqual(everything(machine))
  expect(built.restored.history.all()).toEqual(machine.history.all())

  // At every alignment in memory: the index's words are views where aligned, copies elsewhere; read
  // and checked in slices too, a fraction of the building's.
  for (const shift of [0, 1, 2, 3]) {
    const placed = new Uint8Array(bytes.length + shift)
    placed.set(bytes, shift)
    const { restored, steps } = restoreInSlices(placed.subarray(shift), 100)
    expect(steps).toBeGreaterThan(1)
    expect(steps).toBeLessThan(built.steps / 2)
    expect(restored.snapshot()).toEqual(bytes)
    expect(everything(restored)).toEqual(everything(machine))
    for (const { key } of everything(machine).slice(0, 500))
      expect(restored.getEntry(key)).toEqual(machine.getEntry(key))
    expect(restored.getEntry("no such key")).toBeUndefined()
  }

  // Damage found in a later slice is the same error a whole restore gives.
  const damaged = old.slice(0, old.length - 3)
  const sliced = KvStateMachine.beginRestore(damaged, undefined, 100)
  expect(() => {
    while (sliced.step() === undefined) {}
  }).toThrow(/corrupt snapshot/)
})

test("the version 4 form of a large store still loads, to a machine whose version 6 snapshot matches", () => {
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

test("damaged version 5 and 6 snapshots, their index included, are refused with a clear error", () => {
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
  const old = version5Of(bytes)
  const withOldByte = (at: number, value: number) => {
    const copy = old.slice()
    copy[at] = value
    return copy
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length)
  const headBytes = view.getUint32(2, true)
  const firstKeyAt = 6 + headBytes + 1
  const count = machine.size()
  const sectionAt = bytes.length - 16 - 4 * (3 * count + 2 ** Math.ceil(Math.log2(count * 2)))
  const withWord = (word: number, value: number) => {
    const copy = bytes.slice()
    new DataView(copy.buffer).setUint32(sectionAt + 4 * word, value, true)
    return copy
  }
  const tableAt = 3 * count
  const firstFilledSlot = [...Array(2 ** Math.ceil(Math.log2(count * 2))).keys()].find(
    (slot) => view.getUint32(sectionAt + 4 * (tableAt + slot), true) !== 0,
  )!
  const withTrailer = (at: number, value: number) => {
    const copy = bytes.slice()
    new DataView(copy.buffer).setFloat64(copy.length - 16 + at, value, true)
    return copy
  }
  const cases: [Uint8Array, RegExp][] = [
    [bytes.subarray(0, 4), /shorter than its header/],
    [withByte(1, 7), /unsupported snapshot version 7/],
    [withByte(5, 0xff), /head runs past the end/],
    [bytes.subarray(0, bytes.length - 3), /corrupt snapshot/],
    [new Uint8Array([...bytes, 0, 0, 0, 0]), /corrupt snapshot/],
    // The first key "k1000" becomes "k9000": its stored hash no longer fits it.
    [withByte(firstKeyAt + 1, "9".charCodeAt(0)), /corrupt snapshot: the stored index gives entry 0 a hash/],
    // The index itself: a key placed past the entries, a hash changed, a table slot naming no entry,
    // a table slot emptied, the entries' length and the highest revision in the trailer.
    [withWord(count - 1, 2 ** 31), /corrupt snapshot: the stored index places entry/],
    [withWord(2 * count + 5, 12345), /corrupt snapshot: the stored index gives entry 5 a hash/],
    [
      withWord(tableAt + firstFilledSlot, count + 7),
      /corrupt snapshot: the stored index table slot \d+ names no entry/,
    ],
    [withWord(tableAt + firstFilledSlot, 0), /corrupt snapshot: the stored index table names/],
    [withTrailer(0, 17), /corrupt snapshot/],
    [withTrailer(8, 1), /corrupt snapshot: the stored index points entry/],
    // Version 5: the first key out of order, bytes after the last entry.
    [withOldByte(firstKeyAt + 1, "9".charCodeAt(0)), /out of order/],
    [new Uint8Array([...old, 1, 0x41, 1, 0x42, 1, 0, 1]), /corrupt snapshot/],
  ]
  for (const [damaged, message] of cases) {
    expect(() => KvStateMachine.restore(damaged)).toThrow(message)
  }
  expect(KvStateMachine.restore(old).snapshot()).toEqual(bytes)
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
