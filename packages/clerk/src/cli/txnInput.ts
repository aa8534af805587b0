/**
 * `kv txn` input: a transaction as JSON, checked against a schema so that a mistake is reported
 * with where it is (`at ["compare"][0]["cmp"]`) instead of reaching the cluster.
 *
 *   { "compare": [{ "key": "a", "target": "version", "cmp": "==", "value": 0 }],
 *     "success": [{ "op": "put", "key": "a", "value": "1" }],
 *     "failure": [{ "op": "get", "key": "a" }] }
 */
import type { KvCompare, KvTxnOp, TxnRequest } from "@kv/kvraft"
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

/** The transaction in `text`, or a CliFailure (exit code 2) saying what is wrong and where. */
export const parseTxn = (text: string): Required<TxnRequest> => {
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
  const request = {
    compare: (decoded.compare ?? []).map(toCompare),
    success: ops(decoded.success, "success"),
    failure: ops(decoded.failure, "failure"),
  }
  if (request.compare.length + request.success.length + request.failure.length === 0) {
    throw bad('empty: give "compare", "success" and/or "failure"')
  }
  return request
}
