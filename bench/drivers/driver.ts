import type { Window } from "../lib/latency.ts"
import type { Cell } from "../plan.ts"
import type { OpSource } from "./ops.ts"

/**
 * One client library driving one target from the load process. Each driver runs its workers in
 * the client's own idiom (Effect fibers for kv, async functions for etcd) so neither pays for an
 * adapter on every operation.
 */
export interface Driver {
  /** Writes every key `key-000000 … ` with a value of `valueBytes`, so gets find what they read. */
  preload(keys: number, valueBytes: number): Promise<void>
  /** `cell.concurrency` workers, each doing its next operation as soon as the previous one is answered. */
  runCell(cell: Cell, ops: OpSource, window: Window): Promise<void>
  close(): Promise<void>
}
