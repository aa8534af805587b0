import type { KvError, KvReadAnswer, KvResult } from "@kv/kvraft"

/** The group does not serve the key's shard in its current configuration (or not yet / no longer). */
export interface WrongGroupResult {
  readonly ok: false
  readonly error: "WrongGroup"
  readonly message: string
}

/** A migration or configuration command that did not apply: a duplicate, stale or premature proposal. */
export interface IgnoredResult {
  readonly ok: false
  readonly error: "Ignored"
  readonly message: string
}

/** A DeleteShard for a configuration this group has not reached yet. */
export interface NotReadyResult {
  readonly ok: false
  readonly error: "NotReady"
  readonly message: string
}

/** What applying one shard-group command produced. Client writes give a KvResult or WrongGroup. */
export type ShardResult = KvResult | WrongGroupResult | IgnoredResult | NotReadyResult

/** A linearizable read of one key. */
export type GetResult = { readonly ok: true; readonly value: string } | WrongGroupResult | KvError

export const wrongGroup = (message: string): WrongGroupResult =>
  Object.freeze({ ok: false, error: "WrongGroup", message })
export const ignored = (message: string): IgnoredResult => Object.freeze({ ok: false, error: "Ignored", message })
export const notReady = (message: string): NotReadyResult => Object.freeze({ ok: false, error: "NotReady", message })

/** An entry or a listing page of one shard (see `ShardStateMachine.read`). */
export type ReadResult = KvReadAnswer | WrongGroupResult
