import type { Window } from "../lib/latency.ts"
import type { Cell } from "../plan.ts"
import type { CellAudit } from "./audit.ts"
import type { OpSource } from "./ops.ts"

/**
 * One client library driving one target from the load process. Each driver runs its workers in
 * the client's own idiom (Effect fibers for kv, async functions for etcd) so neither pays for an
 * adapter on every operation.
 */
export interface Driver {
  /** Writes every one of `keys` with `value`, so reads find what they look for. */
  preload(keys: readonly string[], value: string): Promise<void>
  /**
   * `cell.concurrency` workers, each doing its next operation as soon as the previous one is
   * answered; conditional increments and listings are reported to `audit`.
   */
  runCell(cell: Cell, ops: OpSource, window: Window, audit: CellAudit): Promise<void>
  /** watch: puts `value` (the promise fails when the store does not answer that it applied it). */
  put(key: string, value: string): Promise<void>
  /** watch: writes `key` and returns that write's revision, so watches can start right after it. */
  markRevision(key: string): Promise<number>
  /**
   * watch: every event under `prefix` from revision `fromRevision` on, to `handlers` as they come;
   * resolves, once the watch is asked for, to a function that stops it.
   */
  watchPrefix(prefix: string, fromRevision: number, handlers: WatchHandlers): Promise<() => Promise<void>>
  /** Each key's value (undefined when absent), read linearizably once the workers have stopped. */
  read(keys: readonly string[]): Promise<Map<string, string | undefined>>
  close(): Promise<void>
}

export interface WatchHandlers {
  event(key: string, value: string | undefined, modRevision: number): void
  /** The watch ended by itself (the store no longer holds its events, or it was refused). */
  ended(why: string): void
}
