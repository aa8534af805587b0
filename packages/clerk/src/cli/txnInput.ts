/**
 * `kv txn` input: a transaction as JSON, checked against a schema so that a mistake is reported
 * with where it is (`at ["compare"][0]["cmp"]`) instead of reaching the cluster,
 *
 *   { "compare": [{ "key": "a", "target": "version", "cmp": "==", "value": 0 }],
 *     "success": [{ "op": "put", "key": "a", "value": "1" }],
 *     "failure": [{ "op": "get", "key": "a" }] }
 *
 * or the same in lines, for a shell (a word with spaces or quotes in it is written as a JSON string):
 *
 *   if version a == 0
 *   then put a 1
 *   else get a
 */
import { compareOps, compareTargets, type KvCompare, type KvTxnOp, type TxnRequest } from "@kv/kvraft"
import { Schema } from "effect"
import { ExitCode } from "./exitCodes.ts"
import { CliFailure } from "./session.ts"

const CompareJson = Schema.Struct({
  key: Schema.String,
  target: Schema.Literals(["version", "modRevision", "createRevision", "value"]),
  cmp: Schema.Literals(["==", "!=", "<", ">"]),
  value: Schema.Union([Schema.Int, Schema.String]),
})

const OpJson = Schema.Struct({
  op: Schema.Literals(["put", "delete", "get"]),
  key: Schema.String,
  value: Schema.optionalKey(Schema.String),
})

const TxnJson = Schema.Struct({
  compare: Schema.optionalKey(Schema.Array(CompareJson)),
  success: Schema.optionalKey(Schema.Array(OpJson)),
  failure: Schema.optionalKey(Schema.Array(OpJson)),
})

const decodeTxn = Schema.decodeUnknownSync(TxnJson)

const bad = (message: string): CliFailure => new CliFailure(`txn: ${message}`, ExitCode.badInput)

const toCompare = (c: (typeof CompareJson)["Type"], i: number): KvCompare => {
  const numeric = c.target !== "value"
  if (numeric !== (typeof c.value === "number")) {
    throw bad(
      `compare[${i}]: ${c.target} is compared with ${numeric ? "an integer" : "a string"}, not ${JSON.stringify(c.value)}`,
    )
  }
  return { key: c.key, target: c.target, cmp: c.cmp, value: c.value }
}

const toOp = (o: (typeof OpJson)["Type"], where: string): KvTxnOp => {
  if (o.op === "put") {
    if (o.value === undefined) throw bad(`${where}: a put needs a "value"`)
    return { op: "put", key: o.key, value: o.value }
  }
  if (o.value !== undefined) throw bad(`${where}: a ${o.op} takes no "value"`)
  return { op: o.op, key: o.key }
}

const nonEmpty = (request: Required<TxnRequest>): Required<TxnRequest> => {
  if (request.compare.length + request.success.length + request.failure.length === 0) {
    throw bad('empty: give "compare", "success" and/or "failure"')
  }
  return request
}

const parseJson = (text: string): Required<TxnRequest> => {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    throw bad(`not JSON (${error instanceof Error ? error.message : String(error)})`)
  }
  let decoded: (typeof TxnJson)["Type"]
  try {
    decoded = decodeTxn(raw, { onExcessProperty: "error" })
  } catch (error) {
    throw bad(error instanceof Error ? error.message.replace(/\n\s*/g, " ") : String(error))
  }
  const ops = (list: readonly (typeof OpJson)["Type"][] | undefined, branch: string) =>
    (list ?? []).map((o, i) => toOp(o, `${branch}[${i}]`))
  return nonEmpty({
    compare: (decoded.compare ?? []).map(toCompare),
    success: ops(decoded.success, "success"),
    failure: ops(decoded.failure, "failure"),
  })
}

/** A line's words: bare words, or JSON strings for words with spaces or quotes. */
const wordsOf = (line: string, where: string): string[] =>
  (line.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []).map((word) => {
    if (!word.startsWith('"')) return word
    try {
      return JSON.parse(word) as string
    } catch {
      throw bad(`${where}: ${word} is not a valid JSON string`)
    }
  })

const LINE_FORMS = "if TARGET KEY CMP VALUE | then|else put KEY VALUE | then|else delete KEY | then|else get KEY"

const parseLines = (text: string): Required<TxnRequest> => {
  const compare: KvCompare[] = []
  const success: KvTxnOp[] = []
  const failure: KvTxnOp[] = []
  text.split("\n").forEach((line, i) => {
    const where = `line ${i + 1}`
    const words = wordsOf(line, where)
    if (words.length === 0 || words[0]!.startsWith("#")) return
    const [head, ...rest] = words
    if (head === "if") {
      const [target, key, cmp, value] = rest
      if (rest.length !== 4 || target === undefined || key === undefined || cmp === undefined || value === undefined)
        throw bad(`${where}: expected \`if TARGET KEY CMP VALUE\`, as in \`if version lock == 0\``)
      const t = compareTargets.find((name) => name === target)
      if (t === undefined) throw bad(`${where}: the target is one of ${compareTargets.join(", ")}, not ${target}`)
      const c = compareOps.find((op) => op === cmp)
      if (c === undefined) throw bad(`${where}: the comparison is one of ${compareOps.join(" ")}, not ${cmp}`)
      if (t === "value") {
        compare.push({ key, target: t, cmp: c, value })
        return
      }
      if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(Number(value)))
        throw bad(`${where}: ${t} is compared with an integer, not ${value}`)
      compare.push({ key, target: t, cmp: c, value: Number(value) })
      return
    }
    if (head !== "then" && head !== "else") throw bad(`${where}: a line is one of ${LINE_FORMS}`)
    const [op, key, value, ...extra] = rest
    const branch = head === "then" ? success : failure
    if (op === "put" && key !== undefined && value !== undefined && extra.length === 0) {
      branch.push({ op, key, value })
    } else if ((op === "delete" || op === "get") && key !== undefined && value === undefined) {
      branch.push({ op, key })
    } else {
      throw bad(`${where}: expected \`${head} put KEY VALUE\`, \`${head} delete KEY\` or \`${head} get KEY\``)
    }
  })
  return nonEmpty({ compare, success, failure })
}

/**
 * The transaction in `text`, JSON (it starts with `{`) or lines, or a CliFailure (exit code 2)
 * saying what is wrong and where.
 */
export const parseTxn = (text: string): Required<TxnRequest> =>
  text.trimStart().startsWith("{") ? parseJson(text) : parseLines(text)
