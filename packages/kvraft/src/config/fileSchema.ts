import { Schema } from "effect"
import { replicaAddressProblem } from "./replicaAddress.ts"

/** A Raft group larger than this gains no fault tolerance worth its slower commits. */
export const MAX_REPLICAS = 7
export const MAX_SHARDS = 1024

export const DEFAULT_DATA_DIR = "./data"
export const DEFAULT_N_SHARDS = 10
/**
 * 16 MiB: a kvraft replica of 1M keys of 100 B replays at most ≈130-160k puts after its snapshot on
 * restart (≈0.5 s of CPU) and takes its snapshots in slices while serving (docs/operations.md).
 */
export const DEFAULT_MAX_RAFT_STATE_BYTES = 16_777_216

/**
 * Every message below is written to follow "<field path>: ", so it says what is wrong and what
 * would be right without repeating where. `expected` annotations feed the "expected X, got Y"
 * message for values of the wrong TOML type.
 */
const integerIn = (minimum: number, maximum: number, rule: string) =>
  Schema.Number.annotate({ expected: rule }).check(
    Schema.makeFilter((n: number) => {
      if (!Number.isInteger(n)) return `${n} is not an integer (must be ${rule})`
      if (n < minimum || n > maximum) return `${n} is out of range (must be ${rule})`
      return undefined
    }),
  )

const nonEmptyString = (rule: string) =>
  Schema.String.annotate({ expected: rule }).check(
    Schema.makeFilter((s: string) => (s.trim().length > 0 ? undefined : `is empty (must be ${rule})`)),
  )

const ReplicaAddress = Schema.String.annotate({ expected: 'a "host:port" string' }).check(
  Schema.makeFilter((address: string) => replicaAddressProblem(address)),
)

const ReplicaList = Schema.Array(ReplicaAddress)
  .annotate({ expected: 'a list of "host:port" strings' })
  .check(
    Schema.makeFilter((replicas: ReadonlyArray<string>) => {
      if (replicas.length === 0) return `is empty (list 1 to ${MAX_REPLICAS} "host:port" addresses)`
      if (replicas.length > MAX_REPLICAS) {
        return `lists ${replicas.length} replicas; a group has at most ${MAX_REPLICAS}`
      }
      return undefined
    }),
  )

/** A set of replicas running one Raft group: the controller, a shard group or the kvraft service. */
const ReplicaGroup = Schema.Struct({
  replicas: ReplicaList.annotateKey({
    messageMissingKey: 'is missing (every replica group needs replicas = ["host:port", ...])',
  }),
  /** The replica (an index into `replicas`) that leads whenever it is up and holds the log. */
  preferredLeader: Schema.optionalKey(
    integerIn(0, MAX_REPLICAS - 1, `an integer 0–${MAX_REPLICAS - 1}, an index into replicas`),
  ),
}).annotate({ expected: "a table" })

const GroupId = Schema.String.annotate({
  expected: "a valid group id (group ids are positive integers, e.g. [groups.100])",
}).check(Schema.makeFilter((key: string) => /^[1-9]\d*$/.test(key) && Number.isSafeInteger(Number(key))))

const Metrics = Schema.Struct({
  basePort: Schema.optionalKey(integerIn(1, 65535, "an integer 1–65535")),
}).annotate({ expected: "a table" })

const Watch = Schema.Struct({
  historyEvents: Schema.optionalKey(integerIn(1, 10_000_000, "an integer 1–10000000")),
  historyBytes: Schema.optionalKey(integerIn(1, 1024 * 1024 * 1024, "an integer 1–1073741824")),
}).annotate({ expected: "a table" })

const Leases = Schema.Struct({
  checkpointMs: Schema.optionalKey(integerIn(100, 3_600_000, "an integer 100–3600000")),
}).annotate({ expected: "a table" })

/** A client credential the servers accept ([[clientKeys]]): the file holding the key and its role. */
const ClientKeyEntry = Schema.Struct({
  role: Schema.Literals(["read-only", "read-write", "admin"]).annotate({
    expected: '"read-only", "read-write" or "admin"',
  }),
  keyFile: nonEmptyString("a non-empty file path"),
}).annotate({ expected: "a table" })

/** The contents of `cluster.toml` as written; paths are still relative and defaults not yet applied. */
export const ClusterFile = Schema.Struct({
  dataDir: Schema.optionalKey(nonEmptyString("a non-empty directory path")),
  nShards: Schema.optionalKey(integerIn(1, MAX_SHARDS, `an integer 1–${MAX_SHARDS}`)),
  maxRaftStateBytes: Schema.optionalKey(
    integerIn(0, Number.MAX_SAFE_INTEGER, "an integer ≥ 0; 0 means never snapshot"),
  ),
  clusterKeyFile: Schema.optionalKey(nonEmptyString("a non-empty file path")),
  previousClusterKeyFiles: Schema.optionalKey(
    Schema.Array(nonEmptyString("a non-empty file path")).annotate({ expected: "a list of file paths" }),
  ),
  clientKeys: Schema.optionalKey(
    Schema.Array(ClientKeyEntry).annotate({ expected: "a list of [[clientKeys]] tables (role, keyFile)" }),
  ),
  controller: Schema.optionalKey(ReplicaGroup),
  groups: Schema.optionalKey(Schema.Record(GroupId, ReplicaGroup).annotate({ expected: "a table of [groups.<gid>]" })),
  kvraft: Schema.optionalKey(ReplicaGroup),
  metrics: Schema.optionalKey(Metrics),
  watch: Schema.optionalKey(Watch),
  leases: Schema.optionalKey(Leases),
})

export type ClusterFile = typeof ClusterFile.Type

/** Collects every problem (not just the first), refuses unknown keys, and keeps inputs for messages. */
export const decodeClusterFile = Schema.decodeUnknownResult(ClusterFile, {
  errors: "all",
  onExcessProperty: "error",
  reportInput: true,
})
