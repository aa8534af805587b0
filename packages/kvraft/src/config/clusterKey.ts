import { readFileSync } from "node:fs"
import { resolve } from "node:path"

export const CLUSTER_KEY_ENV = "KV_CLUSTER_KEY"

export type ClusterKeyResult =
  | { readonly ok: true; readonly clusterKey: string | undefined }
  | { readonly ok: false; readonly problem: string }

/**
 * The shared HMAC key, if any. The environment wins so a deployment can inject the secret without
 * a file on disk (and the file is then not read at all). An empty key is refused rather than
 * treated as "no key": HMAC with an empty key looks like authentication but stops nobody, and an
 * empty value usually means a broken secret mount or a `$(cat missing)`.
 */
export const resolveClusterKey = (
  clusterKeyFile: unknown,
  baseDir: string,
  env: Record<string, string | undefined>,
): ClusterKeyResult => {
  const fromEnv = env[CLUSTER_KEY_ENV]
  if (fromEnv !== undefined) {
    return fromEnv.trim().length > 0
      ? { ok: true, clusterKey: fromEnv }
      : { ok: false, problem: `${CLUSTER_KEY_ENV}: is set but empty (unset it, or set it to the cluster key)` }
  }
  // A missing or non-string clusterKeyFile is either "no auth" or already reported by the schema.
  if (typeof clusterKeyFile !== "string" || clusterKeyFile.trim().length === 0)
    return { ok: true, clusterKey: undefined }
  const path = resolve(baseDir, clusterKeyFile)
  let contents: string
  try {
    contents = readFileSync(path, "utf8")
  } catch (error) {
    return { ok: false, problem: `clusterKeyFile: ${JSON.stringify(path)} ${readFailure(error)}` }
  }
  const clusterKey = contents.trim()
  return clusterKey.length > 0
    ? { ok: true, clusterKey }
    : { ok: false, problem: `clusterKeyFile: ${JSON.stringify(path)} is empty (it must hold the cluster key)` }
}

/** The reason a file could not be read, in words; shared with the loader of cluster.toml itself. */
export const readFailure = (error: unknown): string => {
  const code = typeof error === "object" && error !== null && "code" in error ? error.code : undefined
  switch (code) {
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
