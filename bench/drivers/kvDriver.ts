/**
 * Drives kvraft (and, with another client, the sharded cluster) through the Effect client API:
 * every worker is a fiber, so an operation costs the client's own work and nothing more.
 */

import type { KvClientShape } from "@kv/kvraft"
import type { RpcNodeShape } from "@kv/rpc"
import { Effect } from "effect"
import type { Window } from "../lib/latency.ts"
import type { Cell } from "../plan.ts"
import type { Driver } from "./driver.ts"
import { keyName, type OpSource, valueOfBytes } from "./ops.ts"

export const kvDriver = (client: KvClientShape, close: () => Promise<void>): Driver => ({
  async preload(keys, valueBytes) {
    const value = valueOfBytes(valueBytes)
    await Effect.runPromise(
      Effect.forEach(
        Array.from({ length: keys }, (_, n) => keyName(n)),
        (key) => client.put(key, value),
        { concurrency: 64, discard: true },
      ),
    )
  },

  async runCell(cell: Cell, ops: OpSource, window: Window) {
    const value = valueOfBytes(cell.valueBytes)
    const worker = (w: number) =>
      Effect.gen(function* () {
        while (window.open) {
          const op = ops.next(w)
          const start = performance.now()
          const outcome = yield* Effect.exit(
            op.kind === "get"
              ? client.get(op.key)
              : op.kind === "put"
                ? client.put(op.key, value)
                : client.append(op.key, value),
          )
          window.done(start, outcome._tag === "Success")
        }
      })
    await Effect.runPromise(
      Effect.forEach(
        Array.from({ length: cell.concurrency }, (_, w) => w),
        worker,
        { concurrency: "unbounded", discard: true },
      ),
    )
  },

  close,
})

export type KvClientFactory = (rpc: RpcNodeShape) => Effect.Effect<KvClientShape>
