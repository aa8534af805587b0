/**
 * Answers to the reads beyond `get` (an entry with its metadata, a page of a listing), computed
 * from a state machine that ReadIndex has brought up to date. Pure: the server runs it inside the
 * apply loop.
 */

import type { KvListOptions, KvListPage, KvStateMachine } from "./kvStateMachine.ts"
import type { KvEntry } from "./result.ts"
import { utf8Exceeds } from "./utf8.ts"

export type KvReadRequest =
  | { readonly read: "entry"; readonly key: string }
  | {
      readonly read: "list"
      readonly prefix: string
      readonly after?: string
      readonly limit?: number
      readonly keysOnly?: boolean
      readonly shard?: number
    }

export type KvReadAnswer =
  | { readonly ok: true; readonly entry: KvEntry | null }
  | ({ readonly ok: true } & KvListPage)
  | { readonly ok: false; readonly error: "KeyTooLarge"; readonly message: string }

export const listOptions = (request: Extract<KvReadRequest, { read: "list" }>): KvListOptions => ({
  after: request.after,
  limit: request.limit,
  keysOnly: request.keysOnly,
})

export const answerRead = (machine: KvStateMachine, request: KvReadRequest): KvReadAnswer => {
  const { maxKeyBytes } = machine.limits
  if (request.read === "entry") {
    if (utf8Exceeds(request.key, maxKeyBytes)) {
      return { ok: false, error: "KeyTooLarge", message: `key exceeds ${maxKeyBytes} bytes` }
    }
    return { ok: true, entry: machine.getEntry(request.key) ?? null }
  }
  return { ok: true, ...machine.list(request.prefix, listOptions(request)) }
}
