import { Effect, Exit } from "effect"
import { checkLinearizable, HistoryRecorder, type KvInput } from "./linearizability/index.ts"
import { pollUntil } from "./realProcesses.ts"
import type { SwarmClient } from "./swarm.ts"

export interface RecordedLoadOptions {
  /** Keys per client (`c<client>-k<0..n-1>`). Default 10. */
  readonly keysPerClient?: number
  /** Every n-th operation of a client is a get, the others appends. Default 4. */
  readonly getEvery?: number
  /** How long `whileClientsComplete` waits for its operations. Default 45 s. */
  readonly timeoutMs?: number
}

/**
 * Clients appending to and reading their own keys, each operation recorded for the
 * linearizability check; what each client appended is kept, so the end can read every key back and
 * compare. For the tests that kill, stop and reconfigure real server processes under load.
 */
export const startRecordedLoad = (clients: readonly SwarmClient[], options: RecordedLoadOptions = {}) => {
  const keysPerClient = options.keysPerClient ?? 10
  const getEvery = options.getEvery ?? 4
  const timeoutMs = options.timeoutMs ?? 45_000
  const history = new HistoryRecorder()
  let completed = 0
  let done = false
  const record = async (c: number, input: KvInput, run: () => Effect.Effect<string | undefined, unknown>) => {
    const token = history.begin(c, input)
    const exit = await Effect.runPromiseExit(run())
    if (Exit.isSuccess(exit)) {
      history.end(token, exit.value)
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
      const key = `c${c}-k${j % keysPerClient}`
      if (j % getEvery === getEvery - 1) {
        await record(c, { op: "get", key }, () => client.get(key))
      } else {
        const value = `${c}.${j};`
        await record(c, { op: "append", key, value }, () => Effect.as(client.append(key, value), undefined))
        mine.set(key, [...(mine.get(key) ?? []), value])
      }
    }
  })
  return {
    /**
     * A fault lasts while the clients complete `n` more operations: it meets the load, however slow
     * the machine. A client's failure ends the wait at once.
     */
    async whileClientsComplete(n: number): Promise<void> {
      const target = completed + n
      await Promise.race([
        pollUntil(`the clients to complete ${n} more operations`, () => completed >= target, { timeoutMs }),
        Promise.all(load),
      ])
    },
    /** Stops the load without waiting (on a failure). */
    abort(): void {
      done = true
    },
    /**
     * Stops the load, reads every key back through `reader` (each acknowledged append present
     * exactly once, in order) and checks the whole history; throws on the first difference.
     */
    async finish(reader: SwarmClient): Promise<void> {
      done = true
      await Promise.all(load)
      for (const mine of appended) {
        for (const [key, values] of mine) {
          const value = await record(0, { op: "get", key }, () => reader.get(key))
          if (value !== values.join("")) {
            throw new Error(`${key} holds ${JSON.stringify(value)}, appended ${JSON.stringify(values.join(""))}`)
          }
        }
      }
      const ops = history.history()
      const verdict = checkLinearizable(ops)
      console.log(`${ops.length} operations; linearizable: ${verdict.ok}`)
      if (!verdict.ok) throw new Error(verdict.explanation)
    },
  }
}
