/**
 * Snapshot file: a 40-byte little-endian header, then the data.
 *   0  magic "KVSN"       4  format version (1)
 *   8  index (u64)        16 term (u64)          24 data length (u64)
 *   32 crc32 of the data  36 crc32 of bytes 0..36
 * Snapshots are only ever renamed into place complete, so any damage here is corruption.
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { snapshotFileName, writeFileAtomically } from "./dataDir.ts"
import { StorageCorrupt } from "./errors.ts"
import type { Snapshot } from "./types.ts"

const MAGIC = 0x4e53564b // "KVSN" read as little-endian u32
const VERSION = 1
const HEADER_BYTES = 40

/** Writes the snapshot durably under its final name (see writeFileAtomically). */
export const writeSnapshotFile = (dir: string, snapshot: Snapshot): void => {
  const header = new Uint8Array(HEADER_BYTES)
  const view = new DataView(header.buffer)
  view.setUint32(0, MAGIC, true)
  view.setUint32(4, VERSION, true)
  view.setBigUint64(8, BigInt(snapshot.index), true)
  view.setBigUint64(16, BigInt(snapshot.term), true)
  view.setBigUint64(24, BigInt(snapshot.data.length), true)
  view.setUint32(32, Bun.hash.crc32(snapshot.data), true)
  view.setUint32(36, Bun.hash.crc32(header.subarray(0, 36)), true)
  writeFileAtomically(dir, snapshotFileName(snapshot.index), [header, snapshot.data])
}

/** Reads and verifies the snapshot stored under index `index`. */
export const readSnapshotFile = (dir: string, index: number): Snapshot => {
  const path = join(dir, snapshotFileName(index))
  const bytes = readFileSync(path)
  const corrupt = (offset: number, reason: string) => new StorageCorrupt({ path, offset, reason })
  if (bytes.length < HEADER_BYTES) throw corrupt(0, `snapshot file of ${bytes.length} bytes has no complete header`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES)
  if (view.getUint32(0, true) !== MAGIC) throw corrupt(0, "not a snapshot file (bad magic)")
  const headerCrc = Bun.hash.crc32(bytes.subarray(0, 36))
  if (view.getUint32(36, true) !== headerCrc) throw corrupt(36, "snapshot header checksum mismatch")
  const version = view.getUint32(4, true)
  if (version !== VERSION) throw corrupt(4, `unknown snapshot format version ${version}`)
  const storedIndex = Number(view.getBigUint64(8, true))
  const term = Number(view.getBigUint64(16, true))
  const length = Number(view.getBigUint64(24, true))
  if (storedIndex !== index) throw corrupt(8, `header says index ${storedIndex}, file name says ${index}`)
  if (length !== bytes.length - HEADER_BYTES) {
    throw corrupt(24, `header says ${length} data bytes, file holds ${bytes.length - HEADER_BYTES}`)
  }
  const data = bytes.subarray(HEADER_BYTES)
  if (view.getUint32(32, true) !== Bun.hash.crc32(data)) throw corrupt(HEADER_BYTES, "snapshot data checksum mismatch")
  return { index, term, data: new Uint8Array(data.buffer, data.byteOffset, data.length) }
}
