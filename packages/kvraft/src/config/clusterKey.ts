import { randomBytes } from "node:crypto"
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs"
import { join, resolve } from "node:path"

export const CLUSTER_KEY_ENV = "KV_CLUSTER_KEY"

/**
 * The key file `bun run cluster` creates in the data directory when no key is configured, so
 * that the default cluster is authenticated. Servers and clients on the machine find it there.
 */
export const GENERATED_KEY_FILE = "cluster.key"

/** Where the key in force came from, in order of precedence. */
export type ClusterKeySource = "KV_CLUSTER_KEY" | "clusterKeyFile" | "dataDir"

export type ClusterKeyResult =
  | { readonly ok: true; readonly clusterKey: string | undefined; readonly source: ClusterKeySource | undefined }
  | { readonly ok: false; readonly problem: string }

const none: ClusterKeyResult = { ok: true, clusterKey: undefined, source: undefined }

/**
 * The servers' key (and, without client keys, everyone's), if any. The environment wins so a deployment can inject the secret without
 * a file on disk (and the file is then not read at all); then an explicit clusterKeyFile; then the
 * key generated in the data directory (`dataDir`, absolute). An empty key is refused rather than
 * treated as "no key": a key derived from nothing looks like protection but stops nobody, and an
 * empty value usually means a broken secret mount or a `$(cat missing)`.
 */
export const resolveClusterKey = (
  clusterKeyFile: unknown,
  baseDir: string,
  env: Record<string, string | undefined>,
  dataDir?: string,
): ClusterKeyResult => {
  const fromEnv = env[CLUSTER_KEY_ENV]
  if (fromEnv !== undefined) {
    return fromEnv.trim().length > 0
      ? { ok: true, clusterKey: fromEnv, source: "KV_CLUSTER_KEY" }
      : { ok: false, problem: `${CLUSTER_KEY_ENV}: is set but empty (unset it, or set it to the cluster key)` }
  }
  // A non-string clusterKeyFile is already reported by the schema; an absent one leaves the data directory.
  if (clusterKeyFile !== undefined) {
    if (typeof clusterKeyFile !== "string" || clusterKeyFile.trim().length === 0) return none
    const path = resolve(baseDir, clusterKeyFile)
    const read = readKeyFile(path, "clusterKeyFile")
    return read ?? { ok: false, problem: `clusterKeyFile: ${JSON.stringify(path)} does not exist` }
  }
  // No generated key yet: the cluster was not started by `bun run cluster`, so it has no key.
  return dataDir === undefined ? none : (readKeyFile(join(dataDir, GENERATED_KEY_FILE), "dataDir") ?? none)
}

/** The key in a file, a problem naming it, or undefined when the file does not exist. */
const readKeyFile = (
  path: string,
  source: ClusterKeySource,
  field = "clusterKeyFile",
): ClusterKeyResult | undefined => {
  const label =
    source === "dataDir"
      ? `the cluster key generated in the data directory, ${JSON.stringify(path)},`
      : `${field}: ${JSON.stringify(path)}`
  let contents: string
  try {
    contents = readFileSync(path, "utf8")
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined
    return { ok: false, problem: `${label} ${readFailure(error)}` }
  }
  const clusterKey = contents.trim()
  if (clusterKey.length > 0) return { ok: true, clusterKey, source }
  const hint =
    source === "dataDir"
      ? "delete it and `bun run cluster` makes a new one, which every server and client must then share"
      : "it must hold the cluster key"
  return { ok: false, problem: `${label} is empty (${hint})` }
}

/** Keys still accepted during a rotation, comma-separated (wins over previousClusterKeyFiles). */
export const PREVIOUS_CLUSTER_KEYS_ENV = "KV_CLUSTER_KEY_PREVIOUS"
/** A client's own credential, used instead of the cluster key when set (see docs/operations.md). */
export const CLIENT_KEY_ENV = "KV_CLIENT_KEY"

export type ClientRole = "read-only" | "read-write" | "admin"

/** A client credential the servers accept, and what it allows. */
export interface ClientKey {
  readonly role: ClientRole
  readonly key: string
}

export type KeyListResult<A> =
  | { readonly ok: true; readonly keys: readonly A[] }
  | { readonly ok: false; readonly problems: readonly string[] }

/**
 * The cluster keys that were in force before the current one and are still accepted, so that a
 * key can be replaced one server at a time (docs/operations.md, "Rotating the cluster key").
 */
export const resolvePreviousClusterKeys = (
  files: unknown,
  baseDir: string,
  env: Record<string, string | undefined>,
): KeyListResult<string> => {
  const fromEnv = env[PREVIOUS_CLUSTER_KEYS_ENV]
  if (fromEnv !== undefined) {
    const keys = fromEnv.split(",").map((k) => k.trim())
    return keys.some((k) => k.length === 0)
      ? {
          ok: false,
          problems: [
            `${PREVIOUS_CLUSTER_KEYS_ENV}: has an empty key (unset it, or list the old keys separated by commas)`,
          ],
        }
      : { ok: true, keys }
  }
  // Not a list of strings: the schema reports it.
  if (!Array.isArray(files)) return { ok: true, keys: [] }
  return readAll(
    files.filter((f): f is string => typeof f === "string" && f.trim().length > 0),
    (file, k) => ({ path: resolve(baseDir, file), field: `previousClusterKeyFiles[${k}]` }),
    (key) => key,
  )
}

/** The client credentials servers accept, from [[clientKeys]]; entries the schema rejects are skipped. */
export const resolveClientKeys = (entries: unknown, baseDir: string): KeyListResult<ClientKey> => {
  if (!Array.isArray(entries)) return { ok: true, keys: [] }
  const valid = entries.filter(
    (e): e is { role: ClientRole; keyFile: string } =>
      typeof e === "object" &&
      e !== null &&
      ["read-only", "read-write", "admin"].includes((e as { role?: unknown }).role as string) &&
      typeof (e as { keyFile?: unknown }).keyFile === "string",
  )
  return readAll(
    valid,
    (entry, k) => ({ path: resolve(baseDir, entry.keyFile), field: `clientKeys[${k}].keyFile` }),
    (key, entry) => ({ role: entry.role, key }),
  )
}

const readAll = <E, A>(
  entries: readonly E[],
  where: (entry: E, k: number) => { path: string; field: string },
  make: (key: string, entry: E) => A,
): KeyListResult<A> => {
  const keys: A[] = []
  const problems: string[] = []
  entries.forEach((entry, k) => {
    const { path, field } = where(entry, k)
    const read = readKeyFile(path, "clusterKeyFile", field) ?? {
      ok: false,
      problem: `${field}: ${JSON.stringify(path)} does not exist`,
    }
    if (!read.ok) problems.push(read.problem)
    else if (read.clusterKey !== undefined) keys.push(make(read.clusterKey, entry))
  })
  return problems.length > 0 ? { ok: false, problems } : { ok: true, keys }
}

/** KV_CLIENT_KEY: a client's own key; empty is refused, as for the cluster key. */
export const resolveClientKey = (
  env: Record<string, string | undefined>,
): { readonly ok: true; readonly clientKey: string | undefined } | { readonly ok: false; readonly problem: string } => {
  const value = env[CLIENT_KEY_ENV]
  if (value === undefined) return { ok: true, clientKey: undefined }
  return value.trim().length > 0
    ? { ok: true, clientKey: value.trim() }
    : { ok: false, problem: `${CLIENT_KEY_ENV}: is set but empty (unset it, or set it to this client's key)` }
}

/**
 * Makes sure `<dataDir>/cluster.key` exists: a random 256-bit key (hex), readable by its owner only
 * (mode 0600), written durably. Returns its path and whether this call created it. An existing
 * file is left as it is, whoever created it, so every start after the first keeps the same key.
 */
export const ensureGeneratedClusterKey = (dataDir: string): { readonly path: string; readonly created: boolean } => {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const path = join(dataDir, GENERATED_KEY_FILE)
  let fd: number
  try {
    fd = openSync(path, "wx", 0o600)
  } catch (error) {
    if (errorCode(error) === "EEXIST") return { path, created: false }
    throw error
  }
  try {
    writeSync(fd, `${randomBytes(32).toString("hex")}\n`)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  return { path, created: true }
}

const errorCode = (error: unknown): unknown =>
  typeof error === "object" && error !== null && "code" in error ? error.code : undefined

/** The reason a file could not be read, in words; shared with the loader of cluster.toml itself. */
export const readFailure = (error: unknown): string => {
  switch (errorCode(error)) {
    case "ENOENT":
      return "does not exist"
    case "EISDIR":
      return "is a directory, not a file"
    case "EACCES":
    case "EPERM":
      return "cannot be read (permission denied)"
    default:
      return `cannot be read (${error instanceof Error ? error.message : String(error)})`
  }
}
