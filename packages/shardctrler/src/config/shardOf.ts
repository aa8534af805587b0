const utf8 = new TextEncoder()

/**
 * The shard a key belongs to: FNV-1a (32-bit) over the key's UTF-8 bytes, modulo nShards.
 * Servers and clerks must agree on it exactly; changing it would strand every stored key.
 */
export const shardOf = (key: string, nShards: number): number => {
  let hash = 0x811c9dc5
  const bytes = utf8.encode(key)
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i]!
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash % nShards
}
