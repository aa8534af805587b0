/**
 * Reads what the netns tests' client machines recorded (see netnsWorker.ts) and checks it: one
 * history for the linearizability checker, and every acknowledged append present exactly once.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { basename, join } from "node:path"
import type { KvInput, Operation } from "@kv/testkit"
import type { OpRecord } from "./netnsWorker.ts"

export const readRecords = <A>(path: string): A[] =>
  existsSync(path)
    ? readFileSync(path, "utf8")
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as A)
    : []

/** Acknowledged operations in `paths` so far: the load's progress. */
export const acknowledged = (paths: readonly string[]): number =>
  paths.reduce(
    (n, path) =>
      n +
      (existsSync(path)
        ? readFileSync(path, "utf8")
            .split("\n")
            .filter((line) => line !== "" && !line.includes('"ret":null')).length
        : 0),
    0,
  )

export const historyOf = (records: readonly OpRecord[]): Operation[] =>
  records.map((r) => {
    const input: KvInput =
      r.op === "get" ? { op: "get", key: r.key } : { op: "append", key: r.key, value: r.value ?? "" }
    const ret = r.ret ?? Number.POSITIVE_INFINITY
    return r.op === "get" && r.ret !== null
      ? { clientId: r.c, input, call: r.call, return: ret, output: r.output ?? "" }
      : { clientId: r.c, input, call: r.call, return: ret }
  })

export interface AppendSummary {
  readonly acknowledged: number
  readonly unknown: number
  /** Unknown appends that did take effect. */
  readonly unknownApplied: number
}

/**
 * Every acknowledged append is in its key's final value exactly once and in issue order; an
 * append of unknown outcome at most once; nothing else is there. Throws naming the first breach.
 */
export const checkAppends = (records: readonly OpRecord[]): AppendSummary => {
  const finals = new Map<string, string>()
  for (const r of records) if (r.final === true && r.ret !== null) finals.set(r.key, r.output ?? "")
  const byKey = new Map<string, OpRecord[]>()
  for (const r of records) if (r.op === "append") byKey.set(r.key, [...(byKey.get(r.key) ?? []), r])
  let acked = 0
  let unknown = 0
  let unknownApplied = 0
  for (const [key, appends] of byKey) {
    const final = finals.get(key)
    if (final === undefined) throw new Error(`no final read of ${key}`)
    const issued = new Map(appends.map((r, order) => [r.value ?? "", { r, order }]))
    const seen = final
      .split(";")
      .filter((t) => t !== "")
      .map((t) => `${t};`)
    const found = new Set<string>()
    let lastOrder = -1
    for (const value of seen) {
      const entry = issued.get(value)
      if (entry === undefined) throw new Error(`${key} holds ${JSON.stringify(value)}, which no client appended to it`)
      if (found.has(value)) throw new Error(`${key} holds ${JSON.stringify(value)} twice: ${final}`)
      if (entry.order < lastOrder) throw new Error(`${key} holds ${JSON.stringify(value)} out of order: ${final}`)
      found.add(value)
      lastOrder = entry.order
    }
    for (const r of appends) {
      if (r.ret !== null) {
        acked++
        if (!found.has(r.value ?? ""))
          throw new Error(`acknowledged append ${JSON.stringify(r.value)} is missing from ${key}: ${final}`)
      } else {
        unknown++
        if (found.has(r.value ?? "")) unknownApplied++
      }
    }
  }
  return { acknowledged: acked, unknown, unknownApplied }
}

/** Copies the clients' records of a failed run where they outlive the test, and says where. */
export const keepRecords = (paths: readonly string[], name: string): void => {
  const kept = join(tmpdir(), name)
  mkdirSync(kept, { recursive: true })
  for (const path of paths) if (existsSync(path)) copyFileSync(path, join(kept, basename(path)))
  console.error(`the clients' records are kept in ${kept}`)
}
