/**
 * The commands a shard group proposes to its Raft log: one tagged msgpack array each.
 *
 *   [0, kvCommandBytes]                 a client write (the kvraft KvCommand encoding, as bin)
 *   [1, num, shards, groups]            Reconfigure to configuration `num`
 *   [2, configNum, shard, shardBytes]   InsertShard: a whole pulled shard in one entry (written by
 *                                       earlier versions; applied as a piece at offset 0 with no checksum)
 *   [3, configNum, shard]               DeleteShard at the old owner
 *   [4, configNum, shard]               GcDone at the new owner
 *   [5, configNum, shard, offset, total, checksum, bytes]
 *                                       InstallPiece: bytes [offset, offset + length) of a pulled
 *                                       shard of `total` bytes whose CRC-32 is `checksum`
 *   [6, incarnation]                    Incarnate: the id of this group's log, made once by its first leader
 *   [7, config, prevConfig, holders]    FastForward: a new incarnation of a gid used before starts at
 *                                       `config` (see ShardStateMachine); holders lists
 *                                       [shard, gid, servers, configNum] of every parked shard
 */
import { decodeCommand, encodeCommand, type KvCommand, readCommonCommand, u16, u32 } from "@kv/kvraft"
import { type Config, type Gid, isGid, makeConfig } from "@kv/shardctrler"
import { Decoder, Encoder } from "@msgpack/msgpack"

export type ShardCommand =
  | { readonly type: "client"; readonly command: KvCommand }
  | { readonly type: "reconfigure"; readonly config: Config }
  | {
      readonly type: "installPiece"
      readonly configNum: number
      readonly shard: number
      readonly offset: number
      readonly total: number
      /** CRC-32 of the whole shard; undefined only for InsertShard entries of earlier versions. */
      readonly checksum: number | undefined
      readonly bytes: Uint8Array
    }
  | { readonly type: "deleteShard"; readonly configNum: number; readonly shard: number }
  | { readonly type: "gcDone"; readonly configNum: number; readonly shard: number }
  | { readonly type: "incarnate"; readonly incarnation: string }
  | {
      readonly type: "fastForward"
      readonly config: Config
      readonly prevConfig: Config
      readonly holders: readonly ShardHolder[]
    }

/** Who keeps `shard` parked, since configuration `configNum` gave it to no group. */
export interface ShardHolder {
  readonly shard: number
  readonly gid: Gid
  readonly servers: readonly string[]
  readonly configNum: number
}

const tagClient = 0
const tagReconfigure = 1
const tagInsertShard = 2
const tagDeleteShard = 3
const tagGcDone = 4
const tagInstallPiece = 5
const tagIncarnate = 6
const tagFastForward = 7

const configFields = (c: Config) => [c.num, c.shards, c.groups]

const encoder = new Encoder()
const decoder = new Decoder()

export const encodeShardCommand = (c: ShardCommand): Uint8Array => {
  switch (c.type) {
    case "client":
      return encoder.encode([tagClient, encodeCommand(c.command)])
    case "reconfigure":
      return encoder.encode([tagReconfigure, c.config.num, c.config.shards, c.config.groups])
    case "installPiece":
      return c.checksum === undefined
        ? encoder.encode([tagInsertShard, c.configNum, c.shard, c.bytes])
        : encoder.encode([tagInstallPiece, c.configNum, c.shard, c.offset, c.total, c.checksum, c.bytes])
    case "deleteShard":
      return encoder.encode([tagDeleteShard, c.configNum, c.shard])
    case "gcDone":
      return encoder.encode([tagGcDone, c.configNum, c.shard])
    case "incarnate":
      return encoder.encode([tagIncarnate, c.incarnation])
    case "fastForward":
      return encoder.encode([
        tagFastForward,
        configFields(c.config),
        configFields(c.prevConfig),
        c.holders.map((h) => [h.shard, h.gid, h.servers, h.configNum]),
      ])
  }
}

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0

/** A configuration as it crossed the wire or the log, rebuilt with its groups in canonical order. */
export const parseConfig = (num: unknown, shards: unknown, groups: unknown): Config | undefined => {
  if (!isCount(num) || !Array.isArray(shards) || !shards.every(isCount)) return undefined
  if (typeof groups !== "object" || groups === null || Array.isArray(groups)) return undefined
  const byGid = new Map<Gid, readonly string[]>()
  for (const [key, servers] of Object.entries(groups as Record<string, unknown>)) {
    const gid = Number(key)
    if (!isGid(gid) || String(gid) !== key) return undefined
    if (!Array.isArray(servers) || !servers.every((s) => typeof s === "string")) return undefined
    byGid.set(gid, servers as string[])
  }
  return makeConfig(num, shards as number[], byGid)
}

/** The command in `bytes`, or undefined if they are not a well-formed shard command. Never throws. */
export const decodeShardCommand = (bytes: Uint8Array): ShardCommand | undefined => {
  const at = clientCommandAt(bytes)
  const command = at < 0 ? undefined : readCommonCommand(bytes, at)
  return command !== undefined ? { type: "client", command } : decodeShardCommandFields(bytes)
}

/**
 * Where a client write's command starts in `bytes` if they are `[0, bin]` with the bin running to
 * their end, else -1: the command is then read in place, not from a subarray (which would give
 * every entry's array an ArrayBuffer of its own, as the generic decoder does).
 */
const clientCommandAt = (bytes: Uint8Array): number => {
  if (bytes.length < 4 || bytes[0] !== 0x92 || bytes[1] !== tagClient) return -1
  const head = bytes[2]
  let start = -1
  let length = 0
  if (head === 0xc4) {
    start = 4
    length = bytes[3]!
  } else if (head === 0xc5 && bytes.length >= 5) {
    start = 5
    length = u16(bytes, 3)
  } else if (head === 0xc6 && bytes.length >= 7) {
    start = 7
    length = u32(bytes, 3)
  }
  return start >= 0 && start + length === bytes.length ? start : -1
}

/** `decodeShardCommand` for any command, through the generic decoder. */
export const decodeShardCommandFields = (bytes: Uint8Array): ShardCommand | undefined => {
  let fields: unknown
  try {
    fields = decoder.decode(bytes)
  } catch {
    return undefined
  }
  if (!Array.isArray(fields) || fields.length < 2) return undefined
  const [tag, a, b, c] = fields as unknown[]
  switch (tag) {
    case tagClient: {
      if (fields.length !== 2 || !(a instanceof Uint8Array)) return undefined
      const command = decodeCommand(a)
      return command === undefined ? undefined : { type: "client", command }
    }
    case tagReconfigure: {
      if (fields.length !== 4) return undefined
      const config = parseConfig(a, b, c)
      return config === undefined ? undefined : { type: "reconfigure", config }
    }
    case tagInsertShard:
      if (fields.length !== 4 || !isCount(a) || !isCount(b) || !(c instanceof Uint8Array)) return undefined
      return { type: "installPiece", configNum: a, shard: b, offset: 0, total: c.length, checksum: undefined, bytes: c }
    case tagInstallPiece: {
      const [, , , offset, total, checksum, bytes] = fields as unknown[]
      if (fields.length !== 7 || !isCount(a) || !isCount(b) || !isCount(offset) || !isCount(total)) return undefined
      if (!isCount(checksum) || checksum > 0xffffffff || !(bytes instanceof Uint8Array)) return undefined
      return { type: "installPiece", configNum: a, shard: b, offset, total, checksum, bytes }
    }
    case tagDeleteShard:
    case tagGcDone:
      if (fields.length !== 3 || !isCount(a) || !isCount(b)) return undefined
      return { type: tag === tagDeleteShard ? "deleteShard" : "gcDone", configNum: a, shard: b }
    case tagIncarnate:
      if (fields.length !== 2 || typeof a !== "string" || a.length === 0) return undefined
      return { type: "incarnate", incarnation: a }
    case tagFastForward: {
      if (fields.length !== 4 || !Array.isArray(a) || !Array.isArray(b) || !Array.isArray(c)) return undefined
      const config = parseConfig(a[0], a[1], a[2])
      const prevConfig = parseConfig(b[0], b[1], b[2])
      const holders = (c as unknown[]).map(parseHolder)
      if (config === undefined || prevConfig === undefined || holders.some((h) => h === undefined)) return undefined
      return { type: "fastForward", config, prevConfig, holders: holders as ShardHolder[] }
    }
    default:
      return undefined
  }
}

const parseHolder = (raw: unknown): ShardHolder | undefined => {
  const [shard, gid, servers, configNum] = Array.isArray(raw) ? (raw as unknown[]) : []
  if (!isCount(shard) || !isGid(gid) || !isCount(configNum)) return undefined
  if (!Array.isArray(servers) || !servers.every((s) => typeof s === "string")) return undefined
  return { shard, gid, servers: servers as string[], configNum }
}
