/**
 * The commands proposed to Raft. Encoded once by the leader and decoded once per replica per
 * entry, so the encoding is a flat msgpack array (no field names):
 *
 *   [clientId, seq, ackedBelow, nowMs, opCode, key]          delete
 *   [clientId, seq, ackedBelow, nowMs, opCode, key, value]   put, append
 *   [clientId, seq, ackedBelow, nowMs, opCode, key, value, condition]                    casPut
 *   [clientId, seq, ackedBelow, nowMs, opCode, key, condition]                           casDelete
 *   [clientId, seq, ackedBelow, nowMs, opCode, key, compares, success, failure]          txn
 *   [clientId, seq, ackedBelow, nowMs, opCode, "", number]      leaseGrant (ttlMs), leaseKeepAlive, leaseRevoke (lease id)
 *
 * with a condition `[target, cmp, value]`, a compare `[key, target, cmp, value]` (target and cmp
 * as their index in `compareTargets` / `compareOps`) and a txn op `[0, key, value]` (put),
 * `[1, key]` (delete) or `[2, key]` (get). A put (plain, conditional or in a transaction) that
 * attaches its key to a lease carries the lease id as one more field.
 *
 * The leader's own commands (lease expiry and checkpoints) belong to no client session: they are
 * `[0, opCode, ...]` (no client id is 0), see `KvLeaderCommand`.
 */
import { Decoder, Encoder } from "@msgpack/msgpack"
import { readCommonCommand } from "./commonCommand.ts"
import { notPlain, readPlainMsgpack } from "./plainMsgpack.ts"

/** What a compare reads of a key; an absent key has version, modRevision and createRevision 0. */
export type KvCompareTarget = "version" | "modRevision" | "createRevision" | "value"
/** `<` and `>` on values compare in byte (code point) order. */
export type KvCompareOp = "==" | "!=" | "<" | ">"

/** A test of one key's entry: a number for the revisions and version, a string for the value. */
export interface KvCondition {
  readonly target: KvCompareTarget
  readonly cmp: KvCompareOp
  readonly value: number | string
}

export interface KvCompare extends KvCondition {
  readonly key: string
}

export type KvTxnOp =
  | { readonly op: "put"; readonly key: string; readonly value: string; readonly lease?: number }
  | { readonly op: "delete"; readonly key: string }
  | { readonly op: "get"; readonly key: string }

export type KvOp =
  /** `lease`: the key is attached to that lease (deleted when it ends); without, it is detached from any. */
  | { readonly op: "put"; readonly key: string; readonly value: string; readonly lease?: number }
  | { readonly op: "append"; readonly key: string; readonly value: string }
  | { readonly op: "delete"; readonly key: string }
  | {
      readonly op: "casPut"
      readonly key: string
      readonly value: string
      readonly when: KvCondition
      readonly lease?: number
    }
  | { readonly op: "casDelete"; readonly key: string; readonly when: KvCondition }
  /** `key` routes the transaction (its first key, "" when it names none); every key must share its shard. */
  | {
      readonly op: "txn"
      readonly key: string
      readonly compare: readonly KvCompare[]
      readonly success: readonly KvTxnOp[]
      readonly failure: readonly KvTxnOp[]
    }
  /** A new lease of `ttlMs`; `key` is "" (leases belong to the whole group). */
  | { readonly op: "leaseGrant"; readonly key: string; readonly ttlMs: number }
  | { readonly op: "leaseKeepAlive"; readonly key: string; readonly lease: number }
  /** Ends the lease and deletes every key attached to it, at one revision. */
  | { readonly op: "leaseRevoke"; readonly key: string; readonly lease: number }

/** Commands a leader proposes of its own accord, outside any client session. */
export type KvLeaderCommand =
  /** The leader's time for the lease ran out; void if it was renewed (`renewals` changed) meanwhile. */
  | { readonly kind: "leaseExpire"; readonly lease: number; readonly renewals: number }
  /**
   * Time left of each lease by the leader's count, so a replica that leads next starts from it:
   * `[lease, remainingMs, renewals]`, void for a lease renewed since (a keep-alive proposed before
   * the checkpoint but applied after the leader counted).
   */
  | { readonly kind: "leaseCheckpoint"; readonly remaining: readonly (readonly [number, number, number])[] }

export const compareTargets: readonly KvCompareTarget[] = ["version", "modRevision", "createRevision", "value"]
export const compareOps: readonly KvCompareOp[] = ["==", "!=", "<", ">"]

/** Every key a command reads or writes. */
export const opKeys = (op: KvOp): string[] => {
  if (op.op === "leaseGrant" || op.op === "leaseKeepAlive" || op.op === "leaseRevoke") return []
  if (op.op !== "txn") return [op.key]
  const keys = op.compare.map((c) => c.key)
  for (const o of op.success) keys.push(o.key)
  for (const o of op.failure) keys.push(o.key)
  return keys
}

/** Whether a condition is well-formed: numbers for the revisions and version, a string for the value. */
export const isCondition = (c: KvCondition): boolean =>
  compareTargets.includes(c.target) &&
  compareOps.includes(c.cmp) &&
  (c.target === "value" ? typeof c.value === "string" : typeof c.value === "number" && Number.isSafeInteger(c.value))

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
const opCodeCasPut = 3
const opCodeCasDelete = 4
const opCodeTxn = 5
const opCodeLeaseGrant = 6
const opCodeLeaseKeepAlive = 7
const opCodeLeaseRevoke = 8
const leaderCodeExpire = 0
const leaderCodeCheckpoint = 1

const encodeCondition = (c: KvCondition) => [compareTargets.indexOf(c.target), compareOps.indexOf(c.cmp), c.value]
const encodeTxnOp = (o: KvTxnOp) =>
  o.op === "put"
    ? o.lease === undefined
      ? [0, o.key, o.value]
      : [0, o.key, o.value, o.lease]
    : o.op === "delete"
      ? [1, o.key]
      : [2, o.key]
/** The lease field, when there is one. */
const withLease = (fields: unknown[], lease: number | undefined): unknown[] => {
  if (lease !== undefined) fields.push(lease)
  return fields
}

// One of each for the whole process: building them allocates buffers and caches.
// `encode` copies out of the shared buffer, so the returned bytes stay valid.
const encoder = new Encoder()
const decoder = new Decoder()

/** The msgpack value in `bytes`: plain ones read fast, the rest by the generic decoder (which may throw). */
const decodeFields = (bytes: Uint8Array): unknown => {
  const plain = readPlainMsgpack(bytes)
  return plain === notPlain ? decoder.decode(bytes) : plain
}

export const encodeCommand = (cmd: KvCommand): Uint8Array => {
  const { op } = cmd
  switch (op.op) {
    case "put":
      return encoder.encode(
        withLease([cmd.clientId, cmd.seq, cmd.ackedBelow, cmd.nowMs, opCodePut, op.key, op.value], op.lease),
      )
    case "append":
      return encoder.encode([cmd.clientId, cmd.seq, cmd.ackedBelow, cmd.nowMs, opCodeAppend, op.key, op.value])
    case "delete":
      return encoder.encode([cmd.clientId, cmd.seq, cmd.ackedBelow, cmd.nowMs, opCodeDelete, op.key])
    case "casPut":
      return encoder.encode(
        withLease(
          [cmd.clientId, cmd.seq, cmd.ackedBelow, cmd.nowMs, opCodeCasPut, op.key, op.value, encodeCondition(op.when)],
          op.lease,
        ),
      )
    case "casDelete":
      return encoder.encode([
        ...[cmd.clientId, cmd.seq, cmd.ackedBelow, cmd.nowMs, opCodeCasDelete, op.key],
        encodeCondition(op.when),
      ])
    case "txn":
      return encoder.encode([
        ...[cmd.clientId, cmd.seq, cmd.ackedBelow, cmd.nowMs, opCodeTxn, op.key],
        op.compare.map((c) => [c.key, ...encodeCondition(c)]),
        op.success.map(encodeTxnOp),
        op.failure.map(encodeTxnOp),
      ])
    case "leaseGrant":
      return encoder.encode([cmd.clientId, cmd.seq, cmd.ackedBelow, cmd.nowMs, opCodeLeaseGrant, "", op.ttlMs])
    case "leaseKeepAlive":
      return encoder.encode([cmd.clientId, cmd.seq, cmd.ackedBelow, cmd.nowMs, opCodeLeaseKeepAlive, "", op.lease])
    case "leaseRevoke":
      return encoder.encode([cmd.clientId, cmd.seq, cmd.ackedBelow, cmd.nowMs, opCodeLeaseRevoke, "", op.lease])
  }
}

export const encodeLeaderCommand = (cmd: KvLeaderCommand): Uint8Array =>
  cmd.kind === "leaseExpire"
    ? encoder.encode([0, leaderCodeExpire, cmd.lease, cmd.renewals])
    : encoder.encode([0, leaderCodeCheckpoint, cmd.remaining.map(([id, ms, renewals]) => [id, ms, renewals])])

/** A leader command in `bytes`, or undefined if they are not one. Never throws. */
export const decodeLeaderCommand = (bytes: Uint8Array): KvLeaderCommand | undefined => {
  let fields: unknown
  try {
    fields = decodeFields(bytes)
  } catch {
    return undefined
  }
  if (!Array.isArray(fields) || fields[0] !== 0) return undefined
  const [, code, a, b] = fields as unknown[]
  if (code === leaderCodeExpire && fields.length === 4 && isPositiveInteger(a) && isCount(b)) {
    return { kind: "leaseExpire", lease: a, renewals: b }
  }
  if (code === leaderCodeCheckpoint && fields.length === 3 && Array.isArray(a)) {
    const remaining: [number, number, number][] = []
    for (const row of a as unknown[]) {
      if (!Array.isArray(row) || !isPositiveInteger(row[0]) || !isCount(row[1])) return undefined
      // Rows of two (no renewal count) were written before checkpoints carried one: never applied.
      if (row.length === 2) continue
      if (row.length !== 3 || !isCount(row[2])) return undefined
      remaining.push([row[0], row[1], row[2]])
    }
    return { kind: "leaseCheckpoint", remaining }
  }
  return undefined
}

/** Whether an entry's bytes are a leader command rather than a client's (cheap: the first bytes). */
export const isLeaderCommand = (bytes: Uint8Array): boolean =>
  // A msgpack fixarray header (0x90–0x9f) followed by positive fixint 0: no client id is 0.
  bytes.length >= 2 && (bytes[0]! & 0xf0) === 0x90 && bytes[1] === 0

const decodeCondition = (raw: unknown): KvCondition | undefined => {
  if (!Array.isArray(raw) || raw.length !== 3) return undefined
  const [t, c, value] = raw as unknown[]
  const target = compareTargets[t as number]
  const cmp = compareOps[c as number]
  if (target === undefined || cmp === undefined || (typeof value !== "number" && typeof value !== "string")) {
    return undefined
  }
  const condition = { target, cmp, value }
  return isCondition(condition) ? condition : undefined
}

const decodeCompare = (raw: unknown): KvCompare | undefined => {
  if (!Array.isArray(raw) || raw.length !== 4 || typeof raw[0] !== "string") return undefined
  const condition = decodeCondition(raw.slice(1))
  return condition === undefined ? undefined : { key: raw[0], ...condition }
}

const decodeTxnOp = (raw: unknown): KvTxnOp | undefined => {
  if (!Array.isArray(raw) || typeof raw[1] !== "string") return undefined
  const [code, key, value, lease] = raw as [unknown, string, unknown, unknown]
  if (code === 0 && raw.length === 3 && typeof value === "string") return { op: "put", key, value }
  if (code === 0 && raw.length === 4 && typeof value === "string" && isPositiveInteger(lease)) {
    return { op: "put", key, value, lease }
  }
  if (code === 1 && raw.length === 2) return { op: "delete", key }
  if (code === 2 && raw.length === 2) return { op: "get", key }
  return undefined
}

const decodeAll = <T>(raw: unknown, decode: (item: unknown) => T | undefined): T[] | undefined => {
  if (!Array.isArray(raw)) return undefined
  const out: T[] = []
  for (const item of raw as unknown[]) {
    const decoded = decode(item)
    if (decoded === undefined) return undefined
    out.push(decoded)
  }
  return out
}

const isPositiveInteger = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 1

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0

const isTime = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value) && value >= 0

/** The command in `bytes`, or undefined if they are not a well-formed command. Never throws. */
export const decodeCommand = (bytes: Uint8Array): KvCommand | undefined =>
  readCommonCommand(bytes) ?? decodeCommandFields(bytes)

/** `decodeCommand` for any command: the bytes read into plain values first, then checked. */
export const decodeCommandFields = (bytes: Uint8Array): KvCommand | undefined => {
  let fields: unknown
  try {
    fields = decodeFields(bytes)
  } catch {
    return undefined
  }
  if (!Array.isArray(fields) || fields.length < 6 || fields.length > 9) return undefined
  const [clientId, seq, ackedBelow, nowMs, opCode, key, value, more, most] = fields as unknown[]
  const n = fields.length
  if (!isPositiveInteger(clientId) || !isPositiveInteger(seq) || !isPositiveInteger(ackedBelow)) return undefined
  if (!isTime(nowMs) || typeof key !== "string") return undefined
  let op: KvOp
  if (opCode === opCodeDelete) {
    if (fields.length !== 6) return undefined
    op = { op: "delete", key }
  } else if (opCode === opCodePut && n === 8) {
    if (typeof value !== "string" || !isPositiveInteger(more)) return undefined
    op = { op: "put", key, value, lease: more }
  } else if (opCode === opCodePut || opCode === opCodeAppend) {
    if (n !== 7 || typeof value !== "string") return undefined
    op = { op: opCode === opCodePut ? "put" : "append", key, value }
  } else if (opCode === opCodeCasPut) {
    const when = decodeCondition(more)
    if ((n !== 8 && n !== 9) || typeof value !== "string" || when === undefined) return undefined
    if (n === 9 && !isPositiveInteger(most)) return undefined
    op = n === 9 ? { op: "casPut", key, value, when, lease: most as number } : { op: "casPut", key, value, when }
  } else if (opCode === opCodeCasDelete) {
    const when = decodeCondition(value)
    if (fields.length !== 7 || when === undefined) return undefined
    op = { op: "casDelete", key, when }
  } else if (opCode === opCodeTxn) {
    const compare = decodeAll(value, decodeCompare)
    const success = decodeAll(more, decodeTxnOp)
    const failure = decodeAll(most, decodeTxnOp)
    if (fields.length !== 9 || compare === undefined || success === undefined || failure === undefined) {
      return undefined
    }
    op = { op: "txn", key, compare, success, failure }
  } else if (opCode === opCodeLeaseGrant || opCode === opCodeLeaseKeepAlive || opCode === opCodeLeaseRevoke) {
    if (n !== 7 || key !== "" || !isPositiveInteger(value)) return undefined
    op =
      opCode === opCodeLeaseGrant
        ? { op: "leaseGrant", key, ttlMs: value }
        : { op: opCode === opCodeLeaseKeepAlive ? "leaseKeepAlive" : "leaseRevoke", key, lease: value }
  } else {
    return undefined
  }
  return { clientId, seq, ackedBelow, nowMs, op }
}
