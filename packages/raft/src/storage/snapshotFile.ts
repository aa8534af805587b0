/**
 * Snapshot file: a little-endian header, then the data.
 * Format 1 (40-byte header; written when the snapshot carries no membership, and by older versions):
 *   0  magic "KVSN"       4  format version (1)
 *   8  index (u64)        16 term (u64)          24 data length (u64)
 *   32 crc32 of the data  36 crc32 of bytes 0..36
 * Format 2 (48-byte header, then the membership bytes of membershipRecord.ts, then the data):
 *   0..32 as format 1 (version 2)                32 crc32 of the data
 *   36 membership length (u32)                   40 crc32 of the membership bytes
 *   44 crc32 of bytes 0..44
 * Snapshots are only ever renamed into place complete, so any damage here is corruption.
 */
import { renameSync } from "node:fs"
import { open } from "node:fs/promises"
import { join } from "node:path"
import { fsyncDir, snapshotFileName, TEMP_SUFFIX, writeFileAtomically } from "./dataDir.ts"
import { StorageCorrupt } from "./errors.ts"
import { mapFile } from "./mappedFile.ts"
import { decodeMembership, encodeMembership } from "./membershipRecord.ts"
import type { Snapshot } from "./types.ts"

const MAGIC = 0x4e53564b // "KVSN" read as little-endian u32
const V1_HEADER_BYTES = 40
const V2_HEADER_BYTES = 48

/** The file's chunks: header, membership (format 2), data; `dataCrc` is the data's crc32. */
const snapshotFileChunks = (snapshot: Snapshot, dataCrc: number): Uint8Array[] => {
  const membership = snapshot.membership === undefined ? undefined : encodeMembership(snapshot.membership)
  const headerBytes = membership === undefined ? V1_HEADER_BYTES : V2_HEADER_BYTES
  const header = new Uint8Array(headerBytes)
  const view = new DataView(header.buffer)
  view.setUint32(0, MAGIC, true)
  view.setUint32(4, membership === undefined ? 1 : 2, true)
  view.setBigUint64(8, BigInt(snapshot.index), true)
  view.setBigUint64(16, BigInt(snapshot.term), true)
  view.setBigUint64(24, BigInt(snapshot.data.length), true)
  view.setUint32(32, dataCrc, true)
  if (membership === undefined) {
    view.setUint32(36, Bun.hash.crc32(header.subarray(0, 36)), true)
    return [header, snapshot.data]
  }
  view.setUint32(36, membership.length, true)
  view.setUint32(40, Bun.hash.crc32(membership), true)
  view.setUint32(44, Bun.hash.crc32(header.subarray(0, 44)), true)
  return [header, membership, snapshot.data]
}

/** Writes the snapshot durably under its final name (see writeFileAtomically). */
export const writeSnapshotFile = (dir: string, snapshot: Snapshot): void => {
  writeFileAtomically(
    dir,
    snapshotFileName(snapshot.index),
    snapshotFileChunks(snapshot, Bun.hash.crc32(snapshot.data)),
  )
}

/** Bytes checksummed between two turns of the event loop (≈0.2 ms). */
const CRC_SLICE_BYTES = 1 << 20

/**
 * The first half of `writeSnapshotFile` without holding the event loop: the data checksummed a
 * slice at a time, the file written and synced under its temporary name on the runtime's thread
 * pool. Returns that name; `publishSnapshotFile` renames it into place. A crash meanwhile leaves a
 * temporary file, which opening the storage removes.
 */
export const prepareSnapshotFile = async (dir: string, snapshot: Snapshot): Promise<string> => {
  let crc = 0
  for (let at = 0; at < snapshot.data.length; at += CRC_SLICE_BYTES) {
    crc = Bun.hash.crc32(snapshot.data.subarray(at, at + CRC_SLICE_BYTES), crc)
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
  // Not writeSnapshotFile's temporary name: an installed snapshot of the same index may be written
  // at once meanwhile.
  const temp = join(dir, `${snapshotFileName(snapshot.index)}.prepared${TEMP_SUFFIX}`)
  const file = await open(temp, "w")
  try {
    let position = 0
    for (const chunk of snapshotFileChunks(snapshot, crc)) {
      for (let done = 0; done < chunk.length; ) {
        const { bytesWritten } = await file.write(chunk, done, chunk.length - done, position + done)
        done += bytesWritten
      }
      position += chunk.length
    }
    await file.datasync()
  } finally {
    await file.close()
  }
  return temp
}

/** Renames a prepared snapshot file (see prepareSnapshotFile) into place and syncs the directory. */
export const publishSnapshotFile = (dir: string, temp: string, index: number): void => {
  renameSync(temp, join(dir, snapshotFileName(index)))
  fsyncDir(dir)
}

/**
 * Reads and verifies the snapshot stored under index `index`. Its data is a view of the file mapped
 * into memory (see mappedFile.ts), checked in full before anything uses it.
 */
export const readSnapshotFile = (dir: string, index: number): Snapshot => {
  const path = join(dir, snapshotFileName(index))
  const bytes = mapFile(path)
  const corrupt = (offset: number, reason: string) => new StorageCorrupt({ path, offset, reason })
  if (bytes.length < V1_HEADER_BYTES) throw corrupt(0, `snapshot file of ${bytes.length} bytes has no complete header`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, V2_HEADER_BYTES))
  if (view.getUint32(0, true) !== MAGIC) throw corrupt(0, "not a snapshot file (bad magic)")
  const version = view.getUint32(4, true)
  const headerBytes = version === 2 ? V2_HEADER_BYTES : V1_HEADER_BYTES
  if (bytes.length < headerBytes) throw corrupt(0, `snapshot file of ${bytes.length} bytes has no complete header`)
  const crcAt = headerBytes - 4
  if (view.getUint32(crcAt, true) !== Bun.hash.crc32(bytes.subarray(0, crcAt))) {
    throw corrupt(crcAt, "snapshot header checksum mismatch")
  }
  if (version !== 1 && version !== 2) throw corrupt(4, `unknown snapshot format version ${version}`)
  const storedIndex = Number(view.getBigUint64(8, true))
  const term = Number(view.getBigUint64(16, true))
  const length = Number(view.getBigUint64(24, true))
  if (storedIndex !== index) throw corrupt(8, `header says index ${storedIndex}, file name says ${index}`)
  const membershipLength = version === 2 ? view.getUint32(36, true) : 0
  const dataStart = headerBytes + membershipLength
  if (length !== bytes.length - dataStart) {
    throw corrupt(24, `header says ${length} data bytes, file holds ${bytes.length - dataStart}`)
  }
  let membership: Snapshot["membership"]
  if (version === 2) {
    const raw = bytes.subarray(headerBytes, dataStart)
    if (view.getUint32(40, true) !== Bun.hash.crc32(raw))
      throw corrupt(headerBytes, "snapshot membership checksum mismatch")
    membership = decodeMembership(new Uint8Array(raw.buffer, raw.byteOffset, raw.length))
    if (membership === undefined) throw corrupt(headerBytes, "snapshot membership is not a membership record")
  }
  const data = bytes.subarray(dataStart)
  if (view.getUint32(32, true) !== Bun.hash.crc32(data)) throw corrupt(dataStart, "snapshot data checksum mismatch")
  const snapshot: Snapshot = { index, term, data: new Uint8Array(data.buffer, data.byteOffset, data.length) }
  return membership === undefined ? snapshot : { ...snapshot, membership }
}
