import { SchemaAST, type SchemaIssue } from "effect"

/**
 * Turns a Schema issue tree into one line per problem, each starting with the TOML path of the
 * offending field (`groups.101.replicas[2]: ...`), because that is what a person editing
 * cluster.toml can find; Effect's default formatter prints JS paths (`["groups"]["101"]`).
 */
export const issueProblems = (issue: SchemaIssue.Issue, topLevelKeys: ReadonlyArray<string> = []): string[] =>
  walk(issue, [], topLevelKeys)

/** `groups.101.replicas[2]`: dotted keys as TOML writes them, indices in brackets. */
export const formatFieldPath = (path: ReadonlyArray<PropertyKey>): string => {
  let out = ""
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`
    else {
      const key = String(segment)
      const bare = /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key)
      out += out.length === 0 ? bare : `.${bare}`
    }
  }
  return out
}

/** A value as it would look in the file, cut short so one bad blob cannot drown the other problems. */
export const formatValue = (value: unknown): string => {
  const text = typeof value === "number" || value === undefined ? String(value) : JSON.stringify(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

const line = (path: ReadonlyArray<PropertyKey>, message: string): string =>
  path.length === 0 ? message : `${formatFieldPath(path)}: ${message}`

const walk = (
  issue: SchemaIssue.Issue,
  path: ReadonlyArray<PropertyKey>,
  topLevelKeys: ReadonlyArray<string>,
): string[] => {
  switch (issue._tag) {
    case "Pointer":
      return walk(issue.issue, [...path, ...issue.path], topLevelKeys)
    case "Composite":
      return issue.issues.flatMap((inner) => walk(inner, path, topLevelKeys))
    case "AnyOf":
      return issue.issues.length > 0
        ? issue.issues.flatMap((inner) => walk(inner, path, topLevelKeys))
        : [line(path, `expected ${expectedOf(issue.ast)}, got ${formatValue(issue.input)}`)]
    case "Encoding":
      return walk(issue.issue, path, topLevelKeys)
    case "Filter": {
      const own = issue.filter.annotations?.message
      if (typeof own === "string") return [line(path, own)]
      if (issue.issue._tag === "InvalidValue") {
        const inner = issue.issue.annotations?.message
        if (typeof inner === "string") return [line(path, inner)]
        const expected = issue.filter.annotations?.expected
        if (typeof expected === "string") return [line(path, `${formatValue(issue.input)} is not ${expected}`)]
      }
      return walk(issue.issue, path, topLevelKeys)
    }
    case "InvalidType":
      return [line(path, `expected ${expectedOf(issue.ast)}, got ${formatValue(issue.input)}`)]
    case "InvalidValue": {
      const message = issue.annotations?.message
      return [line(path, typeof message === "string" ? message : `${formatValue(issue.input)} is not valid`)]
    }
    case "MissingKey": {
      const message = issue.annotations?.messageMissingKey
      return [line(path, typeof message === "string" ? message : "is missing")]
    }
    case "UnexpectedKey":
      return [unexpectedKey(issue, path, topLevelKeys)]
    case "Forbidden":
    case "OneOf":
      return [line(path, `${formatValue(issue.input)} is not valid`)]
  }
}

const expectedOf = (ast: SchemaAST.AST): string => {
  const expected = ast.annotations?.expected
  if (typeof expected === "string") return expected
  switch (ast._tag) {
    case "String":
      return "a string"
    case "Number":
      return "a number"
    case "Arrays":
      return "a list"
    case "Objects":
      return "a table"
    default:
      return ast._tag
  }
}

/**
 * A key the schema does not declare is almost always a typo (`replica =`, `nshards =`), so the
 * message names the keys allowed where it sits and the nearest one. Under a record (`[groups.*]`)
 * the key itself is the value being validated, so the message says what a key must look like.
 * A top-level key found inside a section is TOML's classic trap: every key after `[kvraft]`
 * belongs to that table until the next header.
 */
const unexpectedKey = (
  issue: SchemaIssue.UnexpectedKey,
  path: ReadonlyArray<PropertyKey>,
  topLevelKeys: ReadonlyArray<string>,
): string => {
  const key = String(path[path.length - 1] ?? "")
  const parent = issue.ast
  if (SchemaAST.isObjects(parent)) {
    const keyRule = parent.indexSignatures[0]?.parameter.annotations?.expected
    if (typeof keyRule === "string") return line(path, `${JSON.stringify(key)} is not ${keyRule}`)
    if (path.length > 1 && topLevelKeys.includes(key)) {
      return line(path, `unknown key (${key} is a top-level key: move it above the first [section] header)`)
    }
    const allowed = parent.propertySignatures.map((signature) => String(signature.name))
    const suggestion = nearest(key, allowed)
    const hint = suggestion === undefined ? "" : `did you mean ${JSON.stringify(suggestion)}? `
    return line(path, `unknown key (${hint}allowed here: ${allowed.join(", ")})`)
  }
  return line(path, "unknown key")
}

const nearest = (key: string, candidates: ReadonlyArray<string>): string | undefined => {
  const lower = key.toLowerCase()
  const containing = candidates.find((c) => lower.length >= 3 && c.toLowerCase().includes(lower))
  if (containing !== undefined) return containing
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return best
}

const editDistance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution))
    }
    previous = current
  }
  return previous[b.length] ?? 0
}
