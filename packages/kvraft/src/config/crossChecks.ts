import { formatFieldPath } from "./issueProblems.ts"
import { canonicalAddress, replicaAddressProblem } from "./replicaAddress.ts"

/**
 * Rules that relate one part of the file to another. They read the raw TOML rather than the
 * decoded value so they still run when some field elsewhere is malformed: a user fixing the file
 * sees every problem at once. Shapes the schema rejects are skipped here (already reported).
 */
export const crossCheckProblems = (raw: Record<string, unknown>): string[] => [
  ...serviceProblems(raw),
  ...duplicateAddressProblems(raw),
  ...preferredLeaderProblems(raw),
]

const isTable = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const serviceProblems = (raw: Record<string, unknown>): string[] => {
  const hasGroups = isTable(raw.groups) && Object.keys(raw.groups).length > 0
  if (hasGroups && raw.controller === undefined) {
    return ["controller: is missing; [groups.*] need a [controller] section listing the controller replicas"]
  }
  if (!hasGroups && raw.controller === undefined && raw.kvraft === undefined) {
    return [
      "no service is defined: add [kvraft] for the single-group KV service, or [controller] and [groups.<gid>] for the sharded one",
    ]
  }
  return []
}

/**
 * Two replicas on one address would steal each other's datagrams; name both places so either can
 * move. Replicas of different shard groups at the same position may share one: a process serving
 * both groups' replica k gives them one socket (see SharedSockets).
 */
const duplicateAddressProblems = (raw: Record<string, unknown>): string[] => {
  const lists = replicaGroupTables(raw).map(
    ({ path, table, gid }) => [[...path, "replicas"], table.replicas, gid] as const,
  )

  const firstUse = new Map<
    string,
    { readonly where: string; readonly gid: string | undefined; readonly index: number }
  >()
  const problems: string[] = []
  for (const [listPath, replicas, gid] of lists) {
    if (!Array.isArray(replicas)) continue
    replicas.forEach((address: unknown, index) => {
      if (typeof address !== "string" || replicaAddressProblem(address) !== undefined) return
      const where = formatFieldPath([...listPath, index])
      const key = canonicalAddress(address)
      const earlier = firstUse.get(key)
      if (earlier === undefined) {
        firstUse.set(key, { where, gid, index })
        return
      }
      // Replica `index` of two groups: one process serves both.
      const sharable = gid !== undefined && earlier.gid !== undefined && earlier.gid !== gid && earlier.index === index
      if (!sharable) {
        problems.push(
          `${where}: ${JSON.stringify(address)} is already used by ${earlier.where} (every replica needs its own address; only replicas of different groups at the same position may share one)`,
        )
      }
    })
  }
  return problems
}

/** A preferred leader names one of its group's replicas. */
const preferredLeaderProblems = (raw: Record<string, unknown>): string[] => {
  const problems: string[] = []
  for (const { path, table } of replicaGroupTables(raw)) {
    const { replicas, preferredLeader: k } = table
    if (!Array.isArray(replicas) || replicas.length === 0 || typeof k !== "number") continue
    // Not an integer or negative: the schema says so.
    if (Number.isInteger(k) && k >= replicas.length) {
      problems.push(
        `${formatFieldPath([...path, "preferredLeader"])}: ${k} names no replica (replicas lists ${replicas.length}: 0–${replicas.length - 1})`,
      )
    }
  }
  return problems
}

/** Every replica group's table as written ([controller], each [groups.<gid>], [kvraft]), with where it is. */
const replicaGroupTables = (
  raw: Record<string, unknown>,
): {
  readonly path: readonly string[]
  readonly table: Record<string, unknown>
  readonly gid: string | undefined
}[] => {
  const tables: { path: readonly string[]; table: Record<string, unknown>; gid: string | undefined }[] = []
  if (isTable(raw.controller)) tables.push({ path: ["controller"], table: raw.controller, gid: undefined })
  if (isTable(raw.groups)) {
    for (const [gid, group] of Object.entries(raw.groups)) {
      if (isTable(group)) tables.push({ path: ["groups", gid], table: group, gid })
    }
  }
  if (isTable(raw.kvraft)) tables.push({ path: ["kvraft"], table: raw.kvraft, gid: undefined })
  return tables
}
