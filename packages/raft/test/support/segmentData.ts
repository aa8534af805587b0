/**
 * Length of a WAL segment without the zeros written ahead of its data (preallocation). A save
 * whose final byte is zero would read one byte short; the callers' records end in non-zero bytes.
 */
export const dataBytes = (bytes: Uint8Array): number => {
  let end = bytes.length
  while (end > 0 && bytes[end - 1] === 0) end--
  return end
}
