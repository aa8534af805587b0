const utf8 = new TextEncoder()

/**
 * The part of `key` that decides its shard, as Redis Cluster does: the text inside the first `{`
 * and the first `}` after it, when that text is not empty; otherwise the whole key. So
 * `{user42}.name` and `{user42}.email` share a shard (a transaction may span them), while `a{}b`,
 * `a{b` and keys without braces hash whole.
 */
export const hashTagOf = (key: string): string => {
  const open = key.indexOf("{")
  if (open < 0) return key
  const close = key.indexOf("}", open + 1)
  return close > open + 1 ? key.slice(open + 1, close) : key
}

/**
 * The shard a key belongs to: FNV-1a (32-bit) over the UTF-8 bytes of its hash tag (see
 * `hashTagOf`; the whole key when it has none), modulo nShards. Servers and clerks must agree on
 * it exactly; changing it would strand every stored key. Keys without a hash tag hash as they
 * always have; a key stored before hash tags existed whose name holds `{x}` now lives in x's shard.
 */
export const shardOf = (key: string, nShards: number): number => {
  let hash = 0x811c9dc5
  const bytes = utf8.encode(hashTagOf(key))
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i]!
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash % nShards
}
