/**
 * Drives kvraft (and, with another client, the sharded cluster) through the Effect client API:
 * every worker is a fiber, so an operation costs the client's own work and nothing more.
 */

import type { KvClientShape } from "@kv/kvraft"
import type { RpcNodeShape } from "@kv/rpc"
import { Effect, Fiber, Stream } from "effect"
import type { Window } from "../lib/latency.ts"
import { type Cell, LIST_KEYS_PER_PREFIX } from "../plan.ts"
import type { CellAudit } from "./audit.ts"
import type { Driver, WatchHandlers } from "./driver.ts"
import { counterValue, listingProblem, type OpSource, valueOfBytes } from "./ops.ts"

export const kvDriver = (client: KvClientShape, close: () => Promise<void>): Driver => {
  /**
   * Read, then write value + 1 if the counter's mod revision is unchanged (0: still absent); on a
   * conflict read again. False when the cell ended first (`start`: the first read).
   */
  const casIncrement = (key: string, start: number, window: Window, audit: CellAudit) =>
    Effect.gen(function* () {
      for (;;) {
        const entry = yield* client.getEntry(key)
        const next = String(counterValue(key, entry?.value) + 1)
        const result = yield* client
          .putIf(key, next, { ifModRevision: entry?.modRevision ?? 0 })
          .pipe(Effect.tapError(() => Effect.sync(() => audit.outcomeUnknown(key))))
        window.conditionalWrite(result.applied)
        if (result.applied) {
          audit.incremented(key)
          return true
        }
        if (!window.open) {
          window.incrementUnfinished(start)
          return false
        }
      }
    })

  /** The prefix's first LIST_KEYS_PER_PREFIX keys with their values, page after page if the servers cut it. */
  const listHundred = (prefix: string, audit: CellAudit) =>
    Effect.gen(function* () {
      const keys: string[] = []
      let after: string | undefined
      do {
        const page = yield* client.list(prefix, { limit: LIST_KEYS_PER_PREFIX - keys.length, after })
        for (const entry of page.entries) keys.push(entry.key)
        after = page.next
      } while (after !== undefined && keys.length < LIST_KEYS_PER_PREFIX)
      audit.listed(listingProblem(prefix, keys))
    })

  return {
    // Setup, not measured: wide enough that the client batches well.
    async preload(keys, value) {
      await Effect.runPromise(
        Effect.forEach(keys, (key) => client.put(key, value), { concurrency: 256, discard: true }),
      )
    },

    async runCell(cell: Cell, ops: OpSource, window: Window, audit: CellAudit) {
      const value = valueOfBytes(cell.valueBytes)
      const worker = (w: number) =>
        Effect.gen(function* () {
          while (window.open) {
            const op = ops.next(w)
            const start = performance.now()
            if (op.kind === "cas-incr") {
              const outcome = yield* Effect.exit(casIncrement(op.key, start, window, audit))
              if (outcome._tag === "Failure" || outcome.value) window.incrementDone(start, outcome._tag === "Success")
              continue
            }
            const outcome = yield* Effect.exit(
              op.kind === "get"
                ? client.get(op.key)
                : op.kind === "put"
                  ? client.put(op.key, value)
                  : op.kind === "append"
                    ? client.append(op.key, value)
                    : listHundred(op.key, audit),
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

    async put(key, value) {
      await Effect.runPromise(client.put(key, value))
    },

    async markRevision(key) {
      await Effect.runPromise(client.put(key, "mark"))
      const entry = await Effect.runPromise(client.getEntry(key))
      if (entry === undefined) throw new Error(`${key} is absent right after it was written`)
      return entry.modRevision
    },

    async watchPrefix(prefix: string, fromRevision: number, handlers: WatchHandlers) {
      const fiber = Effect.runFork(
        client.watch({ prefix }, { fromRevision }).pipe(
          Stream.runForEach((e) => Effect.sync(() => handlers.event(e.key, e.value, e.modRevision))),
          Effect.catch((error) => Effect.sync(() => handlers.ended(`${error._tag}: ${error.message}`))),
        ),
      )
      return async () => {
        await Effect.runPromise(Fiber.interrupt(fiber))
      }
    },

    async read(keys) {
      const entries = await Effect.runPromise(Effect.forEach(keys, (key) => client.getEntry(key), { concurrency: 16 }))
      return new Map(keys.map((key, n) => [key, entries[n]?.value]))
    },

    close,
  }
}

export type KvClientFactory = (rpc: RpcNodeShape) => Effect.Effect<KvClientShape>
