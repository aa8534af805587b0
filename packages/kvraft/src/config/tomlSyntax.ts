export type TomlParseResult =
  | { readonly ok: true; readonly value: Record<string, unknown> }
  | { readonly ok: false; readonly problem: string }

/** Locating a syntax error re-parses prefixes of the file; past this size the line is left out. */
const MAX_LOCATED_BYTES = 256 * 1024

/** Parses TOML with `Bun.TOML.parse`, turning a syntax error into a problem line that names its line. */
export const parseToml = (text: string): TomlParseResult => {
  try {
    return { ok: true, value: Bun.TOML.parse(text) as Record<string, unknown> }
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).replace(/^TOML Parse error:\s*/, "")
    const lineNumber = text.length <= MAX_LOCATED_BYTES ? errorLine(text) : undefined
    return {
      ok: false,
      problem:
        lineNumber === undefined
          ? `TOML syntax error: ${reason}`
          : `TOML syntax error on line ${lineNumber}: ${reason}`,
    }
  }
}

/**
 * Bun's TOML errors carry no position, so find it: the error sits on the line after the longest
 * prefix of whole lines that still parses. Were the error inside a multi-line array or string,
 * that is the line where the construct opens, which is where a reader should start looking.
 */
const errorLine = (text: string): number | undefined => {
  const lines = text.split("\n")
  for (let kept = lines.length - 1; kept >= 0; kept--) {
    try {
      Bun.TOML.parse(lines.slice(0, kept).join("\n"))
      return kept + 1
    } catch {
      // This prefix fails too; the error is at or before its last line.
    }
  }
  return undefined
}
