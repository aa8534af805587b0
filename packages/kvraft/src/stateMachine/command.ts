/**
 * The commands proposed to Raft. Encoded once by the leader and decoded once per replica per
 * entry, so the encoding is a flat msgpack array (no field names):
 *
 *   [clientId, seq, ackedBelow, nowMs, opCode, key]          delete
 *   [clientId, seq, ackedBelow, nowMs, opCode, key, value]   put, append
 */
import { Decoder, Encoder } from "@msgpack/msgpack"

export type KvOp =
  | { readonly op: "put"; readonly key: string; readonly value: string }
  | { readonly op: "append"; readonly key: string; readonly value: string }
  | { readonly op: "delete"; readonly key: string }

export interface KvCommand {
  /** Random 53-bit positive integer chosen by the clerk. */
  readonly clientId: number
  /** Per-client sequence number 1, 2, 3, ...; several may be outstanding at once. */
  readonly seq: number
  /** The client has received the results of every seq < ackedBelow (starts at 1). */
  readonly ackedBelow: number
  /**
   * The proposing leader's monotonic clock at propose time. Only differences between consecutive
   * stamps count, clamped, to advance the log time that expires sessions (see sessions.ts).
   */
  readonly nowMs: number
  readonly op: KvOp
}

const opCodePut = 0
const opCodeAppend = 1
const opCodeDelete = 2

// One of each for the whole process: building them allocates buffers and caches.
// `encode` copies out of the shared buffer, so the returned bytes stay valid.
const encoder = new Encoder()
const decoder = new Decoder()

export const encodeCommand = (cmd: KvCommand): Uint8Array => {
  const { op } = cmd
  switch (op.op) {
    case "put":
      return encoder.encode([cmd.clientId, cmd.seq, cmd.ackedBelow, cmd.nowMs, opCodePut, op.key, op.value])
    case "append":
      return encoder.encode([cmd.clientId, cmd.seq, cmd.ackedBelow, cmd.nowMs, opCodeAppend, op.key, op.value])
    case "delete":
      return encoder.encode([cmd.clientId, cmd.seq, cmd.ackedBelow, cmd.nowMs, opCodeDelete, op.key])
  }
}

const isPositiveInteger = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 1

const isTime = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value) && value >= 0

/** The command in `bytes`, or undefined if they are not a well-formed command. Never throws. */
export const decodeCommand = (bytes: Uint8Array): KvCommand | undefined => {
  let fields: unknown
  try {
    fields = decoder.decode(bytes)
  } catch {
    return undefined
  }
  if (!Array.isArray(fields) || fields.length < 6 || fields.length > 7) return undefined
  const [clientId, seq, ackedBelow, nowMs, opCode, key, value] = fields as unknown[]
  if (!isPositiveInteger(clientId) || !isPositiveInteger(seq) || !isPositiveInteger(ackedBelow)) return undefined
  if (!isTime(nowMs) || typeof key !== "string") return undefined
  let op: KvOp
  if (opCode === opCodeDelete) {
    if (fields.length !== 6) return undefined
    op = { op: "delete", key }
  } else if (opCode === opCodePut || opCode === opCodeAppend) {
    if (typeof value !== "string") return undefined
    op = { op: opCode === opCodePut ? "put" : "append", key, value }
  } else {
    return undefined
  }
  return { clientId, seq, ackedBelow, nowMs, op }
}
