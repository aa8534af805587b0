import { expect } from "bun:test"
import type { KvClientShape } from "@kv/kvraft"
import { checkLinearizable, HistoryRecorder, type KvInput, pollUntil } from "@kv/testkit"
import { Effect, Exit } from "effect"

/**
 * Clients appending to and reading keys over every shard (`c<client>-k<0..9>`), each operation
 * recorded for the linearizability check; what each client appended is kept, so the end can read
 * every key back and compare. Used by the tests that kill real server processes under load.
 */
export const startRecordedLoad = (clients: readonly KvClientShape[]) => {
  const history = new HistoryRecorder()
  let completed = 0
  let done = false
  const record = async (c: number, input: KvInput, run: () => Effect.Effect<string | undefined, unknown>) => {
    const token = history.begin(c, input)
    const exit = await Effect.runPromiseExit(run())
    if (Exit.isSuccess(exit)) {
      history.end(token, typeof exit.value === "string" ? exit.value : undefined)
      completed++
      return exit.value
    }
    history.unknown(token)
    throw new Error(`${input.op} ${input.key} failed: ${String(exit.cause)}`)
  }
  const appended: Map<string, string[]>[] = []
  const load = clients.map(async (client, c) => {
    const mine = new Map<string, string[]>()
    appended.push(mine)
    for (let j = 0; !done; j++) {
      const key = `c${c}-k${j % 10}`
      if (j % 4 === 3) {
        await record(c, { op: "get", key }, () => client.get(key))
      } else {
        const value = `${c}.${j};`
        await record(c, { op: "append", key, value }, () => Effect.as(client.append(key, value), undefined))
        mine.set(key, [...(mine.get(key) ?? []), value])
      }
    }
  })
  return {
    /** Waits until the clients have completed `n` more operations (a client's failure ends it at once). */
    async whileClientsComplete(n: number): Promise<void> {
      const target = completed + n
      await Promise.race([
        pollUntil(`the clients to complete ${n} more operations`, () => completed >= target, { timeoutMs: 45_000 }),
        Promise.all(load),
      ])
    },
    /** Stops the load without waiting (on a failure). */
    abort(): void {
      done = true
    },
    /** Stops the load, reads every key back through `reader` and checks the whole history. */
    async finish(reader: KvClientShape): Promise<void> {
      done = true
      await Promise.all(load)
      for (const mine of appended) {
        for (const [key, values] of mine) {
          const value = await record(0, { op: "get", key }, () => reader.get(key))
          expect(value).toBe(values.join(""))
        }
      }
      const ops = history.history()
      const verdict = checkLinearizable(ops)
      console.log(`${ops.length} operations; linearizable: ${verdict.ok}`)
      if (!verdict.ok) throw new Error(verdict.explanation)
    },
  }
}
