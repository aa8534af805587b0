/**
 * Proves that `kv txn` reads a transaction as JSON or as lines into the same request, and that
 * every mistake is a bad-input failure (exit code 2) naming where it is.
 */
import { describe, expect, test } from "bun:test"
import type { TxnRequest } from "@kv/kvraft"
import { CliFailure } from "../src/cli/session.ts"
import { parseTxn } from "../src/cli/txnInput.ts"

const lock: Required<TxnRequest> = {
  compare: [{ key: "{job}.lock", target: "version", cmp: "==", value: 0 }],
  success: [
    { op: "put", key: "{job}.lock", value: "alice smith" },
    { op: "get", key: "{job}.owner" },
  ],
  failure: [{ op: "get", key: "{job}.lock" }],
}

const failure = (text: string): CliFailure => {
  try {
    parseTxn(text)
  } catch (error) {
    if (error instanceof CliFailure) return error
    throw error
  }
  throw new Error(`parsed: ${text}`)
}

describe("kv txn input", () => {
  test("JSON and lines give the same transaction", () => {
    expect(parseTxn(JSON.stringify(lock))).toEqual(lock)
    const lines = [
      "# take the lock if nobody holds it",
      "if version {job}.lock == 0",
      "",
      'then put {job}.lock "alice smith"',
      "then get {job}.owner",
      "else get {job}.lock",
    ].join("\n")
    expect(parseTxn(lines)).toEqual(lock)
    expect(parseTxn('if value k != "a \\"b\\""\nelse delete k')).toEqual({
      compare: [{ key: "k", target: "value", cmp: "!=", value: 'a "b"' }],
      success: [],
      failure: [{ op: "delete", key: "k" }],
    })
    // Only failure ops, or only compares: the missing parts are empty.
    expect(parseTxn('{"success": [{"op": "delete", "key": "k"}]}')).toEqual({
      compare: [],
      success: [{ op: "delete", key: "k" }],
      failure: [],
    })
  })

  test("every mistake is bad input that says where it is", () => {
    const cases: [string, string][] = [
      ["{ nope", "txn: not JSON"],
      ['{"compare": [{"key": "a", "target": "version", "cmp": "=", "value": 0}]}', 'at ["compare"][0]["cmp"]'],
      ['{"compare": [{"key": "a", "target": "value", "cmp": "==", "value": 1}]}', "compare[0]: value is compared"],
      ['{"compare": [{"key": "a", "target": "version", "cmp": "==", "value": "1"}]}', "compare[0]: version"],
      ['{"success": [{"op": "put", "key": "a"}]}', 'success[0]: a put needs a "value"'],
      ['{"failure": [{"op": "get", "key": "a", "value": "x"}]}', 'failure[0]: a get takes no "value"'],
      ['{"success": [], "extra": 1}', 'at ["extra"]'],
      ["{}", "txn: empty"],
      ["# nothing\n\n", "txn: empty"],
      ["if version k = 0", "line 1: the comparison is one of == != < >, not ="],
      ["if size k == 0", "line 1: the target is one of version, modRevision, createRevision, value, not size"],
      ["if version k == 1.5", "line 1: version is compared with an integer"],
      ["if version k ==", "line 1: expected `if TARGET KEY CMP VALUE`"],
      ["then put k", "line 1: expected `then put KEY VALUE`"],
      ["then get k v", "line 1: expected `then put KEY VALUE`"],
      ["if version k == 0\nmaybe put k v", "line 2: a line is one of"],
      ['then put k "unterminated', 'line 1: "unterminated is not a valid JSON string'],
    ]
    for (const [text, message] of cases) {
      const refused = failure(text)
      expect({ text, code: refused.code }).toEqual({ text, code: 2 })
      expect(refused.message).toContain(message)
    }
  })
})
