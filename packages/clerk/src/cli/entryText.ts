/** How the CLI shows a key's entry (value and metadata), for people and for scripts. */
import type { KvEntry } from "@kv/kvraft"

/** Longer values are cut in messages (the full value is in `--json` and `kv get`). */
const SHOWN_VALUE_CHARS = 200

const quoted = (value: string): string =>
  value.length > SHOWN_VALUE_CHARS
    ? `${JSON.stringify(value.slice(0, SHOWN_VALUE_CHARS))}... (${value.length} characters)`
    : JSON.stringify(value)

/** One line: `"k" = "v" (version 3, modRevision 17, createRevision 12)`, or `"k" is absent`. */
export const describeEntry = (key: string, entry: KvEntry | undefined): string =>
  entry === undefined
    ? `${JSON.stringify(key)} is absent`
    : `${JSON.stringify(key)} = ${quoted(entry.value)} (version ${entry.version}, modRevision ${entry.modRevision}, createRevision ${entry.createRevision})`

/** `kv get --meta`: the value and each field on its own labelled line. */
export const renderEntry = (entry: KvEntry): string =>
  [
    `value           ${entry.value}`,
    `version         ${entry.version}`,
    `modRevision     ${entry.modRevision}`,
    `createRevision  ${entry.createRevision}`,
  ].join("\n")

/** An entry for `--json` (null when absent), its fields in a fixed order. */
export const entryJson = (entry: KvEntry | undefined) =>
  entry === undefined
    ? null
    : {
        value: entry.value,
        version: entry.version,
        modRevision: entry.modRevision,
        createRevision: entry.createRevision,
      }
