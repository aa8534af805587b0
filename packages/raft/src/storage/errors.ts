import { Schema } from "effect"

/**
 * Persisted data is damaged in a way a crash cannot explain (anything other than a torn tail of the
 * last WAL segment). The server must not start on it: silently dropping or repairing it could make it
 * forget votes or acknowledged entries.
 */
export class StorageCorrupt extends Schema.TaggedError<StorageCorrupt>()("StorageCorrupt", {
  path: Schema.String,
  offset: Schema.Number,
  reason: Schema.String,
}) {
  override get message(): string {
    return `${this.path} at byte ${this.offset}: ${this.reason}`
  }
}
