/**
 * Drives etcd through the npm `etcd3` client (gRPC), connected to the leader. Gets are etcd's
 * default linearizable reads. Append has no etcd operation: it is a get, then a transaction that
 * puts the longer value only if the key's mod revision is unchanged (create revision 0 when the
 * key is new), retried on conflict (never, with one writer per key).
 */
import { Etcd3 } from "etcd3"
import type { Window } from "../lib/latency.ts"
import type { Cell } from "../plan.ts"
import type { Driver } from "./driver.ts"
import { keyName, type OpSource, valueOfBytes } from "./ops.ts"

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

  return {
    async preload(keys, valueBytes) {
      const value = valueOfBytes(valueBytes)
      let next = 0
      const worker = async () => {
        for (let n = next++; n < keys; n = next++) await client.put(keyName(n)).value(value)
      }
      await Promise.all(Array.from({ length: 64 }, worker))
    },

    async runCell(cell: Cell, ops: OpSource, window: Window) {
      const value = valueOfBytes(cell.valueBytes)
      const worker = async (w: number) => {
        while (window.open) {
          const op = ops.next(w)
          const start = performance.now()
          let ok = true
          try {
            if (op.kind === "get") await client.get(op.key).string()
            else if (op.kind === "put") await client.put(op.key).value(value)
            else await append(op.key, value)
          } catch {
            ok = false
          }
          window.done(start, ok)
        }
      }
      await Promise.all(Array.from({ length: cell.concurrency }, (_, w) => worker(w)))
    },

    async close() {
      client.close()
    },
  }
}
