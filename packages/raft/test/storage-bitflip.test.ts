// Proves that damaged bytes never turn into wrong data: a flipped bit anywhere in the WAL or a
// snapshot is either reported as StorageCorrupt or, in the final record only, taken for a torn
// tail that loses just the last save.
import { afterAll, describe, expect, test } from "bun:test"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Entry, openFileStorage, type PersistedState, StorageCorrupt } from "../src/storage/index.ts"
import { dataBytes } from "./support/segmentData.ts"

const seed = Number(process.env.KV_SEED ?? Math.floor(Math.random() * 2 ** 31))
console.log(
  `storage-bitflip seed ${seed} (replay: KV_SEED=${seed} bun test packages/raft/test/storage-bitflip.test.ts)`,
)

const rng = (s: number) => {
  let state = s >>> 0
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

const root = mkdtempSync(join(tmpdir(), "kv-storage-bitflip-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

type Outcome = { kind: "corrupt"; error: StorageCorrupt } | { kind: "loaded"; state: PersistedState }

/** Opens a directory holding exactly `files`. */
const openImage = (dir: string, files: Map<string, Uint8Array>): Outcome => {
  mkdirSync(dir, { recursive: true })
  for (const name of readdirSync(dir)) if (!files.has(name)) rmSync(join(dir, name))
  for (const [name, bytes] of files) writeFileSync(join(dir, name), bytes)
  try {
    const storage = openFileStorage(dir)
    const state = storage.load()
    storage.close()
    return { kind: "loaded", state }
  } catch (error) {
    if (error instanceof StorageCorrupt) return { kind: "corrupt", error }
    throw error
  }
}

const flipped = (bytes: Uint8Array, bit: number): Uint8Array => {
  const copy = new Uint8Array(bytes)
  copy[bit >> 3] = (copy[bit >> 3] as number) ^ (1 << (bit & 7))
  return copy
}

// Both layouts of the live segment: ending exactly after the last save, and followed by zeros
// written ahead (preallocation), where a flip in the zeros must lose nothing or be reported.
for (const preallocateBytes of [0, 400])
  describe(`bit flips (preallocate ${preallocateBytes} B)`, () => {
    // Three WAL segments and a snapshot; the last save is a hard state alone, so the final record of
    // the last segment is exactly the bytes that save added.
    const source = join(root, `source-${preallocateBytes}`)
    const storage = openFileStorage(source, { segmentBytes: 400, preallocateBytes })
    const random = rng(seed)
    let index = 0
    const nextEntries = (count: number): Entry[] =>
      Array.from({ length: count }, () => {
        index += 1
        return { term: 2, index, data: Uint8Array.from({ length: Math.floor(random() * 20) }, () => random() * 256) }
      })
    storage.save({ term: 2, vote: 1, commit: 0 }, nextEntries(6))
    storage.saveSnapshot({ index: 4, term: 2, data: Uint8Array.from({ length: 64 }, (_, k) => k) })
    for (let k = 0; k < 30; k++)
      storage.save(k % 3 === 0 ? { term: 2, vote: 1, commit: index } : undefined, nextEntries(1 + (k % 3)))
    const beforeLastSave = storage.load()
    const walFiles = () =>
      readdirSync(source)
        .filter((name) => name.startsWith("wal-"))
        .sort()
    const sizesBeforeLastSave = new Map(walFiles().map((name) => [name, dataBytes(readFileSync(join(source, name)))]))
    storage.save({ term: 3, vote: 2, commit: index }, [])
    // The last save may have started a new segment, in which case it is that segment's only record.
    const segments = walFiles()
    const lastSegment = segments.at(-1) as string
    const finalRecordStart = sizesBeforeLastSave.get(lastSegment) ?? 0
    const complete = storage.load()
    storage.close()
    const files = new Map<string, Uint8Array>(
      readdirSync(source).map((name) => [name, new Uint8Array(readFileSync(join(source, name)))]),
    )
    const work = join(root, `work-${preallocateBytes}`)
    // Where the last segment's data ends and its zeros begin (the final record ends in a non-zero commit index).
    const lastBytes = files.get(lastSegment) as Uint8Array
    const dataEnd = dataBytes(lastBytes)

    test("the flipped WAL is either reported as corrupt or, for the final record, loses only the last save", () => {
      expect(segments.length).toBeGreaterThanOrEqual(3)
      expect(openImage(work, files)).toEqual({ kind: "loaded", state: complete })
      const targets = segments.flatMap((name) => {
        const bits = (files.get(name) as Uint8Array).length * 8
        return Array.from({ length: bits }, (_, bit) => ({ name, bit }))
      })
      // Every bit when that is affordable, otherwise a seeded sample of 4,000.
      const sample =
        targets.length <= 16_000
          ? targets
          : Array.from(
              { length: 4_000 },
              () => targets[Math.floor(random() * targets.length)] as (typeof targets)[number],
            )
      let corrupt = 0
      let truncated = 0
      for (const { name, bit } of sample) {
        const image = new Map(files)
        image.set(name, flipped(files.get(name) as Uint8Array, bit))
        const outcome = openImage(work, image)
        const inFinalRecord = name === lastSegment && bit >> 3 >= finalRecordStart && bit >> 3 < dataEnd
        const inZeros = name === lastSegment && bit >> 3 >= dataEnd
        if (outcome.kind === "corrupt") {
          corrupt++
          expect(outcome.error.path).toBe(join(work, name))
          continue
        }
        if (inZeros) {
          if (!Bun.deepEquals(outcome.state, complete)) throw new Error(`flip of bit ${bit} in zeros lost data`)
          truncated++
          continue
        }
        if (!inFinalRecord || !Bun.deepEquals(outcome.state, beforeLastSave)) {
          throw new Error(`flip of bit ${bit} in ${name} loaded ${JSON.stringify(outcome.state.hardState)} silently`)
        }
        truncated++
      }
      console.log(`bit flips: ${sample.length} tried, ${corrupt} reported corrupt, ${truncated} taken for a torn tail`)
      expect(corrupt + truncated).toBe(sample.length)
      expect(sample.length).toBeGreaterThanOrEqual(2_000)
      expect(truncated).toBeGreaterThan(0)
      if (preallocateBytes > 0) expect(dataEnd).toBeLessThan(lastBytes.length)
      else expect(dataEnd).toBe(lastBytes.length)
    }, 60_000)

    test("every flipped bit of a snapshot file is reported as corrupt", () => {
      const name = [...files.keys()].find((file) => file.startsWith("snap-")) as string
      const bits = (files.get(name) as Uint8Array).length * 8
      for (let bit = 0; bit < bits; bit++) {
        const image = new Map(files)
        image.set(name, flipped(files.get(name) as Uint8Array, bit))
        const outcome = openImage(work, image)
        if (outcome.kind !== "corrupt") throw new Error(`flip of bit ${bit} in ${name} was not detected`)
        expect(outcome.error.path).toBe(join(work, name))
      }
    })
  })
