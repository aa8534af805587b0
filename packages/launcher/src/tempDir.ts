import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { removeDir, trackDir } from "./cleanup.ts"

export interface TempDir {
  readonly path: string
  /** Removes it and everything in it. */
  remove(): void
}

/** A new directory under the system's temporary directory, removed by `remove()` or when this process exits. */
export const tempDir = (prefix: string): TempDir => {
  const path = mkdtempSync(join(tmpdir(), `${prefix}-`))
  trackDir(path)
  return { path, remove: () => removeDir(path) }
}
