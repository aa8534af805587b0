/**
 * UTF-8 length of a string as `TextEncoder` would encode it (a lone surrogate becomes
 * U+FFFD, 3 bytes), without allocating the encoding.
 */
export const utf8ByteLength = (text: string): number => {
  let bytes = 0
  const length = text.length
  for (let i = 0; i < length; i++) {
    const unit = text.charCodeAt(i)
    if (unit < 0x80) bytes += 1
    else if (unit < 0x800) bytes += 2
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < length) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4
        i++
      } else bytes += 3
    } else bytes += 3
  }
  return bytes
}

/**
 * Whether `text` takes more than `limit` UTF-8 bytes. Each UTF-16 unit takes 1 to 3 bytes,
 * so most strings are decided from `length` alone and only borderline ones are counted.
 */
export const utf8Exceeds = (text: string, limit: number): boolean => {
  if (text.length > limit) return true
  if (text.length * 3 <= limit) return false
  return utf8ByteLength(text) > limit
}

/** Whether `prefix + suffix` would take more than `limit` UTF-8 bytes, without concatenating. */
export const utf8ConcatExceeds = (prefix: string, suffix: string, limit: number): boolean => {
  const units = prefix.length + suffix.length
  if (units > limit) return true
  if (units * 3 <= limit) return false
  // A surrogate pair split across the seam is one 4-byte character once joined, though
  // counted apart as two lone surrogates of 3 bytes each.
  return utf8ByteLength(prefix) + utf8ByteLength(suffix) - seamCorrection(prefix, suffix) > limit
}

const seamCorrection = (prefix: string, suffix: string): number => {
  const last = prefix.charCodeAt(prefix.length - 1)
  const first = suffix.charCodeAt(0)
  return last >= 0xd800 && last <= 0xdbff && first >= 0xdc00 && first <= 0xdfff ? 2 : 0
}
