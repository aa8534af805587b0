// Proves that a user value holding the bytes of a well-formed WAL frame cannot make a torn final
// write look like corruption: whatever byte the crash cuts the record at, with the file ending there
// or followed by preallocated zeros, the replica recovers the saves before it and starts.
import { afterAll, describe, expect, test } from "bun:test"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Entry, openFileStorage, type PersistedState } from "../src/storage/index.ts"
import { declaredBodyBytes, FRAME_HEADER_BYTES, FrameBatch } from "../src/storage/walRecord.ts"
import { dataBytes } from "./support/segmentData.ts"

const root = mkdtempSync(join(tmpdir(), "kv-storage-embedded-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let dirCount = 0
const freshDir = () => {
  const dir = join(root, `d${dirCount++}`)
  mkdirSync(dir)
  return dir
}

/** The exact frames our writer produces for these records: a value can carry them verbatim. */
const framesOf = (build: (batch: FrameBatch) => void): Uint8Array => {
  const batch = new FrameBatch()
  build(batch)
  return batch.contents().slice()
}

/** A value embedding a complete save (an entry closing its batch, then a hard state) between other bytes. */
const hostileValue = (nextIndex: number): Uint8Array => {
  const embedded = framesOf((batch) => {
    batch.addEntry({ term: 1, index: nextIndex + 1, data: new Uint8Array([7, 7, 7]) }, true)
    batch.addHardState({ term: 1, vote: 1, commit: nextIndex }, true)
  })
  const value = new Uint8Array(5 + embedded.length + 40)
  value.fill(0x41, 0, 5)
  value.set(embedded, 5)
  // Non-zero to the end, so the data length of a preallocated segment can be read back.
  value.fill(0x42, 5 + embedded.length)
  return value
}

interface Written {
  readonly dir: string
  readonly segment: string
  readonly full: Uint8Array
  /** Where the save holding the hostile value starts and ends in the segment. */
  readonly start: number
  readonly end: number
  readonly before: PersistedState
  readonly after: PersistedState
}

const writeHostileSave = (preallocateBytes: number): Written => {
  const dir = freshDir()
  const storage = openFileStorage(dir, { preallocateBytes })
  const segmentPath = () => join(dir, readdirSync(dir).find((name) => name.startsWith("wal-")) as string)
  const log: Entry[] = Array.from({ length: 4 }, (_, k) => ({ term: 1, index: k + 1, data: new Uint8Array([k + 1]) }))
  storage.save({ term: 1, vote: 1, commit: 2 }, log)
  const before = storage.load()
  const start = dataBytes(readFileSync(segmentPath()))
  const hostile: Entry = { term: 1, index: 5, data: hostileValue(5) }
  storage.save(undefined, [hostile])
  const after = storage.load()
  const full = new Uint8Array(readFileSync(segmentPath()))
  const end = dataBytes(full)
  storage.close()
  expect(after.entries.at(-1)).toEqual(hostile)
  return { dir, segment: segmentPath().slice(dir.length + 1), full, start, end, before, after }
}

/** Opens a copy of the data directory whose segment is `image`, and what it loads. */
const recover = (written: Written, image: Uint8Array, preallocateBytes: number): PersistedState => {
  const dir = freshDir()
  for (const name of readdirSync(written.dir)) {
    writeFileSync(join(dir, name), name === written.segment ? image : readFileSync(join(written.dir, name)))
  }
  const storage = openFileStorage(dir, { preallocateBytes })
  try {
    return storage.load()
  } finally {
    storage.close()
    rmSync(dir, { recursive: true })
  }
}

describe("a value that embeds a WAL frame, in a torn final write", () => {
  test("the file cut at every byte of the record recovers the saves before it", () => {
    const written = writeHostileSave(0)
    expect(written.end).toBe(written.full.length)
    for (let cut = written.start; cut < written.end; cut++) {
      expect({ cut, state: recover(written, written.full.subarray(0, cut), 0) }).toEqual({
        cut,
        state: written.before,
      })
    }
    expect(recover(written, written.full, 0)).toEqual(written.after)
  }, 30_000)

  test("a preallocated segment cut at every byte of the record (zeros after) recovers the saves before it", () => {
    const written = writeHostileSave(4096)
    expect(written.full.length).toBeGreaterThan(written.end)
    for (let cut = written.start; cut < written.end; cut++) {
      const image = new Uint8Array(written.full.length)
      image.set(written.full.subarray(0, cut))
      expect({ cut, state: recover(written, image, 4096) }).toEqual({ cut, state: written.before })
    }
    expect(recover(written, written.full, 4096)).toEqual(written.after)
  }, 30_000)
})

describe("the size a record body declares", () => {
  test("matches the length field of every record the writer produces, and is unknown for a short prefix", () => {
    const numbers = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]
    const dataLengths = [0, 1, 255, 256, 65_535, 65_536, 70_000]
    const frames: Uint8Array[] = []
    for (const n of numbers) {
      for (const length of dataLengths) {
        frames.push(
          framesOf((b) => b.addEntry({ term: n, index: Math.max(1, n), data: new Uint8Array(length) }, false)),
        )
      }
      frames.push(framesOf((b) => b.addHardState({ term: n, vote: n % 7, commit: n }, true)))
      frames.push(framesOf((b) => b.addCompacted(n, n)))
    }
    for (const frame of frames) {
      const length = new DataView(frame.buffer).getUint32(0, true)
      const body = frame.subarray(FRAME_HEADER_BYTES)
      expect(body.length).toBe(length)
      expect(declaredBodyBytes(body)).toBe(length)
      expect(declaredBodyBytes(body.subarray(0, 1))).toBeUndefined()
    }
  })
})
