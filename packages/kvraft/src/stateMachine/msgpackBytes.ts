/**
 * Reading numbers and ASCII strings out of msgpack bytes without `.buffer`. A log entry's bytes are
 * usually a small array of their own; asking it for its `.buffer` (for a DataView or a Buffer over
 * it) makes JavaScriptCore give it an ArrayBuffer, which cost a leader more than decoding the
 * command (4% of its samples at put c=64). Floats, rare in commands, still take a DataView.
 */

/** Big-endian unsigned 16 bits at `at`. */
export const u16 = (bytes: Uint8Array, at: number): number => (bytes[at]! << 8) | bytes[at + 1]!

/** Big-endian unsigned 32 bits at `at`. */
export const u32 = (bytes: Uint8Array, at: number): number =>
  bytes[at]! * 0x1000000 + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!)

/** Big-endian float of `width` (4 or 8) bytes at `at`. */
export const float = (bytes: Uint8Array, at: number, width: 4 | 8): number => {
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, width)
  return width === 4 ? view.getFloat32(0) : view.getFloat64(0)
}

const latin1Slice = (
  Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, start: number, end: number): string }
).latin1Slice

/** `bytes[start, end)` as Latin-1 (the caller has checked they are ASCII): Buffer's reader, on the array itself. */
export const latin1 = (bytes: Uint8Array, start: number, end: number): string => latin1Slice.call(bytes, start, end)
