/**
 * The commands nearly every log holds (puts, appends, deletes, and transactions without compares),
 * read straight from their msgpack bytes into the command (command.ts gives the layout). Every
 * replica decodes every entry it applies, and a restarted one a tail of many thousands before it
 * serves: reading them into plain arrays first and checking those after allocated every command
 * twice over.
 *
 * Anything else, or anything unusual about these (a non-ASCII string, a float where an integer is
 * usual, a compare, bytes left over), is `undefined`: the caller decodes those bytes the general
 * way, which stays the authority and gives the same result for whatever this reads.
 */
import type { KvCommand, KvOp, KvTxnOp } from "./command.ts"
import { float, latin1, u16, u32 } from "./msgpackBytes.ts"

const opCodePut = 0
const opCodeAppend = 1
const opCodeDelete = 2
const opCodeTxn = 5

class CommonReader {
  at = 0
  /** Set once the bytes hold something this reader leaves to the general decoder. */
  failed = false
  readonly #bytes: Uint8Array

  constructor(bytes: Uint8Array, start: number) {
    this.#bytes = bytes
    this.at = start
  }

  get done(): boolean {
    return this.at === this.#bytes.length
  }

  #fail(): number {
    this.failed = true
    return 0
  }

  /** An array's length (fixarray or array 16: a transaction often holds more than 15 ops), or -1. */
  arrayHead(): number {
    const bytes = this.#bytes
    const head = bytes[this.at]
    if (head !== undefined && head >= 0x90 && head <= 0x9f) {
      this.at++
      return head & 0x0f
    }
    if (head !== 0xdc || this.at + 3 > bytes.length) return this.#fail() - 1
    this.at += 3
    return u16(this.#bytes, this.at - 2)
  }

  /** An unsigned integer of up to 32 bits; 0 (failed) for any other value. */
  uint(): number {
    const bytes = this.#bytes
    const at = this.at
    const head = bytes[at]
    if (head === undefined) return this.#fail()
    if (head <= 0x7f) {
      this.at = at + 1
      return head
    }
    const width = head === 0xcc ? 1 : head === 0xcd ? 2 : head === 0xce ? 4 : 0
    if (width === 0 || at + 1 + width > bytes.length) return this.#fail()
    this.at = at + 1 + width
    return width === 1 ? bytes[at + 1]! : width === 2 ? u16(this.#bytes, at + 1) : u32(this.#bytes, at + 1)
  }

  /** An unsigned integer of any width (uint 64 as the platform reads it: as a double). */
  #anyUint(): number {
    const at = this.at
    if (this.#bytes[at] !== 0xcf) return this.uint()
    if (at + 9 > this.#bytes.length) return this.#fail()
    this.at = at + 9
    return u32(this.#bytes, at + 1) * 4294967296 + u32(this.#bytes, at + 5)
  }

  /** A positive integer of up to 53 bits (client ids take 53); 0 (failed) for any other value. */
  positive(): number {
    const n = this.#anyUint()
    return n >= 1 && Number.isSafeInteger(n) ? n : this.#fail()
  }

  /** A time stamp: an unsigned integer, or a finite non-negative float64. */
  time(): number {
    const at = this.at
    if (this.#bytes[at] !== 0xcb) return this.#anyUint()
    if (at + 9 > this.#bytes.length) return this.#fail()
    // Rare: the leader's clock gives integers.
    const n = float(this.#bytes, at + 1, 8)
    if (!Number.isFinite(n) || n < 0) return this.#fail()
    this.at = at + 9
    return n
  }

  /** An ASCII string; "" (failed) for any other value. */
  ascii(): string {
    const bytes = this.#bytes
    const head = bytes[this.at]
    let start = this.at + 1
    let length: number
    if (head === undefined) return this.#failString()
    if (head >= 0xa0 && head <= 0xbf) length = head & 0x1f
    else if (head === 0xd9 && start < bytes.length) length = bytes[start++]!
    else if (head === 0xda && start + 2 <= bytes.length) {
      length = u16(this.#bytes, start)
      start += 2
    } else return this.#failString()
    const end = start + length
    if (end > bytes.length) return this.#failString()
    for (let i = start; i < end; i++) if (bytes[i]! >= 0x80) return this.#failString()
    this.at = end
    return latin1(bytes, start, end)
  }

  #failString(): string {
    this.failed = true
    return ""
  }
}

const txnOp = (reader: CommonReader): KvTxnOp | undefined => {
  const n = reader.arrayHead()
  if (n < 2 || n > 4) return undefined
  const code = reader.uint()
  const key = reader.ascii()
  if (reader.failed) return undefined
  if (code === 0 && n === 3) return { op: "put", key, value: reader.ascii() }
  if (code === 0 && n === 4) {
    const value = reader.ascii()
    return { op: "put", key, value, lease: reader.positive() }
  }
  if (code === 1 && n === 2) return { op: "delete", key }
  if (code === 2 && n === 2) return { op: "get", key }
  return undefined
}

const txnOps = (reader: CommonReader): KvTxnOp[] | undefined => {
  const n = reader.arrayHead()
  if (n < 0) return undefined
  const ops: KvTxnOp[] = []
  for (let i = 0; i < n; i++) {
    const op = txnOp(reader)
    if (op === undefined || reader.failed) return undefined
    ops.push(op)
  }
  return ops
}

/**
 * The command in `bytes` from `start` to the end if it is one of the common kinds, read as
 * `decodeCommand` reads those bytes; else undefined. (An offset rather than a subarray: a
 * subarray, like `.buffer`, gives the array an ArrayBuffer.)
 */
export const readCommonCommand = (bytes: Uint8Array, start = 0): KvCommand | undefined => {
  const reader = new CommonReader(bytes, start)
  const n = reader.arrayHead()
  if (n < 6 || n > 9) return undefined
  const clientId = reader.positive()
  const seq = reader.positive()
  const ackedBelow = reader.positive()
  const nowMs = reader.time()
  const opCode = reader.uint()
  const key = reader.ascii()
  if (reader.failed) return undefined
  let op: KvOp
  if (opCode === opCodePut && n === 7) op = { op: "put", key, value: reader.ascii() }
  else if (opCode === opCodePut && n === 8) {
    const value = reader.ascii()
    op = { op: "put", key, value, lease: reader.positive() }
  } else if (opCode === opCodeAppend && n === 7) op = { op: "append", key, value: reader.ascii() }
  else if (opCode === opCodeDelete && n === 6) op = { op: "delete", key }
  else if (opCode === opCodeTxn && n === 9) {
    // Compares go the general way.
    if (reader.arrayHead() !== 0) return undefined
    const success = txnOps(reader)
    const failure = success === undefined ? undefined : txnOps(reader)
    if (success === undefined || failure === undefined) return undefined
    op = { op: "txn", key, compare: [], success, failure }
  } else return undefined
  if (reader.failed || !reader.done) return undefined
  return { clientId, seq, ackedBelow, nowMs, op }
}
