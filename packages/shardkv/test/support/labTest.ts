import { test } from "bun:test"
import { seedFromEnv } from "@kv/rpc"

/** The lab harness's per-test wall-clock bound (checkTimeout). */
export const LAB_TEST_TIMEOUT_MS = 120_000

/** A seeded sharded-KV scenario: prints its seed, and the replay command when it fails. */
export const labTest = (
  name: string,
  file: string,
  body: (seed: number) => Promise<void>,
  timeoutMs = LAB_TEST_TIMEOUT_MS,
) =>
  test(
    name,
    async () => {
      const seed = seedFromEnv()
      const start = performance.now()
      try {
        await body(seed)
        console.log(`"${name}" passed in ${((performance.now() - start) / 1000).toFixed(1)} s (seed ${seed})`)
      } catch (error) {
        console.error(`"${name}" failed; replay: KV_SEED=${seed} bun test ${file} -t "${name}"`)
        throw error
      }
    },
    timeoutMs,
  )

export const sleep = (ms: number) => Bun.sleep(ms)

/** Settles with how many of `promises` fulfilled within `ms`; a rejection fails the call. */
export const countCompletedWithin = async (promises: readonly Promise<unknown>[], ms: number): Promise<number> => {
  let done = 0
  let failure: unknown
  for (const p of promises) {
    p.then(
      () => {
        done++
      },
      (error) => {
        failure ??= error
      },
    )
  }
  await sleep(ms)
  if (failure !== undefined) throw failure
  return done
}

/** Polls `condition` until it holds; fails naming `what` after `deadlineMs`. */
export const waitUntil = async (
  what: string,
  deadlineMs: number,
  condition: () => boolean | Promise<boolean>,
): Promise<void> => {
  const end = performance.now() + deadlineMs
  while (!(await condition())) {
    if (performance.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting until ${what}`)
    await sleep(50)
  }
}
