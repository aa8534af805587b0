import { Schema } from "effect"

/**
 * The cluster configuration cannot be used. `problems` holds every problem found, one
 * self-contained line each (field path, what is wrong, what would be right), so a person can fix
 * the whole file in one pass; `source` is the file's absolute path or "<inline>".
 */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  source: Schema.String,
  problems: Schema.Array(Schema.String),
}) {
  override get message(): string {
    const count = this.problems.length === 1 ? "1 problem" : `${this.problems.length} problems`
    return [
      `invalid cluster config ${this.source} (${count}):`,
      ...this.problems.map((problem) => `  ${problem}`),
    ].join("\n")
  }
}
