/**
 * CRC-32 (IEEE 802.3, the zlib polynomial), incremental, in plain TypeScript: the shard state
 * machine is pure and checks a moved shard with it on every replica. Slicing by eight, so a
 * 100 MB shard costs a few hundred milliseconds once per move.
 */
const tables: Uint32Array[] = (() => {
  const first = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    first[n] = c >>> 0
  }
  const all = [first]
  for (let t = 1; t < 8; t++) {
    const previous = all[t - 1]!
    const table = new Uint32Array(256)
    for (let n = 0; n < 256; n++) table[n] = (previous[n]! >>> 8) ^ first[previous[n]! & 0xff]!
    all.push(table)
  }
  return all
})()

/** The CRC-32 of `previous`'s input followed by `bytes`; start with `crc32(bytes)` (previous 0). */
export const crc32 = (bytes: Uint8Array, previous = 0): number => {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = tables as [
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
  ]
  let crc = ~previous >>> 0
  let i = 0
  const end8 = bytes.length - (bytes.length % 8)
  while (i < end8) {
    const a = (crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24))) >>> 0
    crc =
      t7[a & 0xff]! ^
      t6[(a >>> 8) & 0xff]! ^
      t5[(a >>> 16) & 0xff]! ^
      t4[a >>> 24]! ^
      t3[bytes[i + 4]!]! ^
      t2[bytes[i + 5]!]! ^
      t1[bytes[i + 6]!]! ^
      t0[bytes[i + 7]!]!
    i += 8
  }
  while (i < bytes.length) crc = t0[(crc ^ bytes[i++]!) & 0xff]! ^ (crc >>> 8)
  return ~crc >>> 0
}
