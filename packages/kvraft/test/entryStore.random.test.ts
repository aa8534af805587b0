/**
 * Proves that the store's keys (EntryStore: the entries of the last snapshot read where they lie,
 * the changes since laid over them) answer exactly as a plain sorted map would: gets, presence,
 * size, ordered ranges from any start (non-ASCII, astral and lone-surrogate keys included), through
 * writes, deletes and rewrites of snapshot keys, and that the entries it writes for a snapshot are
 * byte for byte those written afresh from the same contents. Replay with KV_SEED=<seed>.
 */
import { expect, test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { EntryBase } from "../src/stateMachine/entryBase.ts"
import { EntryStore, type StoredEntry } from "../src/stateMachine/entryStore.ts"
import { compareKeys } from "../src/stateMachine/orderedKeys.ts"
import { EntriesWriter } from "../src/stateMachine/snapshotEntries.ts"

const alphabet = ["a", "b", "z", "/", "é", "ж", "中", "\u{1F600}", "\uE000", "\uFFFD", "0", "\u007f", "\u0080"]

const word = (random: SeededRandom, max: number) => {
  let s = ""
  for (let n = random.int(max + 1); n > 0; n--) s += alphabet[random.int(alphabet.length)]
  return s
}

/** The specification: a map and its keys sorted by compareKeys. */
class Model {
  readonly entries = new Map<string, StoredEntry>()

  write(key: string, value: string, revision: number): StoredEntry {
    const old = this.entries.get(key)
    const entry =
      old === undefined
        ? { value, version: 1, modRevision: revision, createRevision: revision }
        : { value, version: old.version + 1, modRevision: revision, createRevision: old.createRevision }
    this.entries.set(key, entry)
    return entry
  }

  sorted(): string[] {
    return [...this.entries.keys()].sort(compareKeys)
  }

  range(from: string, after: string | undefined): string[] {
    const start = after !== undefined && compareKeys(after, from) >= 0 ? after : from
    const exclusive = start === after
    return this.sorted().filter((k) => (exclusive ? compareKeys(k, start) > 0 : compareKeys(k, start) >= 0))
  }

  /** Entries written afresh, or undefined if a string cannot be (a lone surrogate). */
  written(): Uint8Array | undefined {
    const writer = new EntriesWriter(64)
    for (const key of this.sorted()) if (!writer.add(key, this.entries.get(key)!)) return undefined
    return new Uint8Array(writer.bytes())
  }
}

const plain = (e: StoredEntry | undefined) =>
  e === undefined
    ? undefined
    : { value: e.value, version: e.version, modRevision: e.modRevision, createRevision: e.createRevision }

const take = <A>(items: Iterable<A>, n: number): A[] => {
  const out: A[] = []
  for (const item of items) {
    if (out.length >= n) break
    out.push(item)
  }
  return out
}

test("the store answers as a sorted map through writes, deletes and snapshots folded into its base", () => {
  const seed = seedFromEnv()
  console.log(`entry store: seed ${seed} (replay: KV_SEED=${seed})`)
  const random = new SeededRandom(seed)
  for (let round = 0; round < 12; round++) {
    const model = new Model()
    let store = new EntryStore()
    let revision = 0
    const keyOf = () => {
      if (random.chance(0.02)) return `${word(random, 2)}\uD800${word(random, 1)}`
      return word(random, 1 + random.int(4))
    }
    for (let step = 0; step < 3_000; step++) {
      const roll = random.int(100)
      const key = keyOf()
      if (roll < 45) {
        const value = random.chance(0.01) ? "v\uDC00" : word(random, 12)
        revision++
        expect(plain(store.write(key, value, revision))).toEqual(model.write(key, value, revision))
      } else if (roll < 60) {
        expect(store.has(key)).toBe(model.entries.has(key))
        if (model.entries.has(key)) {
          store.delete(key)
          model.entries.delete(key)
        }
      } else if (roll < 80) {
        expect(plain(store.get(key))).toEqual(model.entries.get(key))
      } else if (roll < 97) {
        const after = random.chance(0.5) ? undefined : keyOf()
        const n = 1 + random.int(30)
        const got = take(store.entries(key, after), n)
        const want = model.range(key, after).slice(0, n)
        expect(got.map(([k]) => k)).toEqual(want)
        expect(got.map(([, e]) => plain(e))).toEqual(want.map((k) => model.entries.get(k)))
      } else {
        // A snapshot: the entries written equal a fresh write of the contents, and become the base.
        const writer = new EntriesWriter(16)
        const frozen = store.freeze()
        const writing = frozen.write(writer, 1 + random.int(4_096))
        let next = writing.next()
        while (next.done !== true) next = writing.next()
        const wrote = next.value
        const fresh = model.written()
        expect(wrote).toBe(fresh !== undefined)
        if (fresh === undefined) {
          store.thaw()
          continue
        }
        const bytes = new Uint8Array(writer.bytes())
        expect(Buffer.from(bytes).equals(fresh)).toBe(true)
        if (random.chance(0.5)) store.rebaseFrozen(new EntryBase(bytes, model.entries.size))
        else store = EntryStore.fromSnapshotEntries(bytes, model.entries.size)
      }
      expect(store.size).toBe(model.entries.size)
    }
    expect(take(store.entries(""), Number.POSITIVE_INFINITY).map(([k]) => k)).toEqual(model.sorted())
  }
})

test("damaged entries are refused: out of order, not UTF-8, a count they do not hold, a long-form length", () => {
  const writer = new EntriesWriter(64)
  for (const key of ["a", "b", "c"]) writer.add(key, { value: "v", createRevision: 1, modRevision: 2, version: 1 })
  const bytes = new Uint8Array(writer.bytes())
  expect(() => EntryStore.fromSnapshotEntries(bytes, 3)).not.toThrow()
  const swapped = new Uint8Array(bytes)
  swapped[1] = "d".charCodeAt(0)
  expect(() => EntryStore.fromSnapshotEntries(swapped, 3)).toThrow(/out of order/)
  const notUtf8 = new Uint8Array(bytes)
  notUtf8[1] = 0xff
  expect(() => EntryStore.fromSnapshotEntries(notUtf8, 3)).toThrow(/not UTF-8/)
  expect(() => EntryStore.fromSnapshotEntries(bytes, 2)).toThrow(/beyond the count/)
  expect(() => EntryStore.fromSnapshotEntries(bytes, 4)).toThrow(/the head says 4/)
  expect(() => EntryStore.fromSnapshotEntries(bytes, 2 ** 40)).toThrow(/cannot fit/)
  // The first key's length 1 written in two bytes (0x81 0x00).
  const longForm = new Uint8Array([0x81, 0x00, ...bytes])
  longForm.set(bytes.subarray(1), 2)
  expect(() => EntryStore.fromSnapshotEntries(longForm.subarray(0, bytes.length + 1), 3)).toThrow(/shortest form/)
})
