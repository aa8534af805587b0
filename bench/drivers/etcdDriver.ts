/**
 * Drives etcd through the npm `etcd3` client (gRPC), connected to the leader. Gets and ranges are
 * etcd's default linearizable reads. Append has no etcd operation: it is a get, then a transaction
 * that puts the longer value only if the key's mod revision is unchanged (create revision 0 when
 * the key is new), retried on conflict (never, with one writer per key). cas-incr is the same
 * get-then-Txn on a shared counter; list100 is a prefix Range limited to 100 keys.
 */
import { Etcd3 } from "etcd3"
import type { Window } from "../lib/latency.ts"
import { type Cell, LIST_KEYS_PER_PREFIX } from "../plan.ts"
import type { CellAudit } from "./audit.ts"
import type { Driver, WatchHandlers } from "./driver.ts"
import { counterValue, listingProblem, type OpSource, valueOfBytes } from "./ops.ts"

export const etcdDriver = (endpoints: readonly string[]): Driver => {
  const client = new Etcd3({ hosts: endpoints[0]! })

  const append = async (key: string, arg: string): Promise<void> => {
    for (;;) {
      const current = (await client.get(key).exec()).kvs[0]
      const committed =
        current === undefined
          ? await client.if(key, "Create", "==", 0).then(client.put(key).value(arg)).commit()
          : await client
              .if(key, "Mod", "==", current.mod_revision)
              .then(client.put(key).value(current.value.toString() + arg))
              .commit()
      if (committed.succeeded) return
    }
  }

  /**
   * Read, then a Txn that writes value + 1 if the counter's mod_revision is unchanged (etcd
   * compares an absent key's mod_revision as 0); on a conflict read again. False when the cell
   * ended first (`start`: the first read).
   */
  const casIncrement = async (key: string, start: number, window: Window, audit: CellAudit): Promise<boolean> => {
    for (;;) {
      const current = (await client.get(key).exec()).kvs[0]
      const next = String(counterValue(key, current?.value.toString()) + 1)
      let succeeded: boolean
      try {
        const committed = await client
          .if(key, "Mod", "==", current?.mod_revision ?? 0)
          .then(client.put(key).value(next))
          .commit()
        succeeded = committed.succeeded
      } catch (error) {
        audit.outcomeUnknown(key)
        throw error
      }
      window.conditionalWrite(succeeded)
      if (succeeded) {
        audit.incremented(key)
        return true
      }
      if (!window.open) {
        window.incrementUnfinished(start)
        return false
      }
    }
  }

  const listHundred = async (prefix: string, audit: CellAudit): Promise<void> => {
    const entries = await client.getAll().prefix(prefix).limit(LIST_KEYS_PER_PREFIX).strings()
    audit.listed(listingProblem(prefix, Object.keys(entries)))
  }

  return {
    async preload(keys, value) {
      let next = 0
      const worker = async () => {
        for (let n = next++; n < keys.length; n = next++) await client.put(keys[n]!).value(value)
      }
      await Promise.all(Array.from({ length: 64 }, worker))
    },

    async runCell(cell: Cell, ops: OpSource, window: Window, audit: CellAudit) {
      const value = valueOfBytes(cell.valueBytes)
      const worker = async (w: number) => {
        while (window.open) {
          const op = ops.next(w)
          const start = performance.now()
          if (op.kind === "cas-incr") {
            const finished = await casIncrement(op.key, start, window, audit).catch(() => undefined)
            if (finished !== false) window.incrementDone(start, finished === true)
            continue
          }
          let ok = true
          try {
            if (op.kind === "get") await client.get(op.key).string()
            else if (op.kind === "put") await client.put(op.key).value(value)
            else if (op.kind === "append") await append(op.key, value)
            else await listHundred(op.key, audit)
          } catch {
            ok = false
          }
          window.done(start, ok)
        }
      }
      await Promise.all(Array.from({ length: cell.concurrency }, (_, w) => worker(w)))
    },

    async put(key, value) {
      await client.put(key).value(value)
    },

    async markRevision(key) {
      return Number((await client.put(key).value("mark").exec()).header.revision)
    },

    async watchPrefix(prefix: string, fromRevision: number, handlers: WatchHandlers) {
      const watcher = await client.watch().prefix(prefix).startRevision(String(fromRevision)).create()
      watcher.on("put", (kv) => handlers.event(kv.key.toString(), kv.value.toString(), Number(kv.mod_revision)))
      watcher.on("delete", (kv) => handlers.event(kv.key.toString(), undefined, Number(kv.mod_revision)))
      watcher.on("error", (error) => handlers.ended(error.message))
      return async () => {
        await watcher.cancel()
      }
    },

    async read(keys) {
      const values = await Promise.all(keys.map((key) => client.get(key).string()))
      return new Map(keys.map((key, n) => [key, values[n] ?? undefined]))
    },

    async close() {
      client.close()
    },
  }
}
