import { SeededRandom } from "@kv/rpc"
import { randstring, type ShardLab } from "./shardLab.ts"

/**
 * The lab's concurrent appenders (`ff`): one clerk per key appends a random 5-character string,
 * then pauses (in virtual time), until stopped; `values[i]` tracks what key i must hold.
 */
export const startAppenders = async (
  lab: ShardLab,
  keys: readonly string[],
  values: string[],
  pauseMs: number,
  seed: number,
) => {
  let done = false
  const clerks = await Promise.all(keys.map(() => lab.makeClient()))
  const running = keys.map(async (key, i) => {
    const random = new SeededRandom(seed + 1_000 * (i + 1))
    const clerk = clerks[i]!
    while (!done) {
      const x = randstring(5, () => random.next())
      await lab.append(clerk, key, x)
      values[i] += x
      await lab.sleep(pauseMs)
    }
  })
  // Surface the first failure at once instead of when stopped.
  let failure: unknown
  for (const r of running) r.catch((error) => (failure ??= error))
  return {
    failed: () => failure,
    async stop(): Promise<void> {
      done = true
      await Promise.all(running)
    },
  }
}
