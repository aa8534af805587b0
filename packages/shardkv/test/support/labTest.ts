import { test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { ShardLab, type ShardLabOptions } from "./shardLab.ts"

/** Wall-clock guard against a pathologically slow run; the lab's bounds are checked in virtual time. */
export const LAB_TEST_TIMEOUT_MS = 120_000
/** The lab's per-test bound (checkTimeout), in virtual time: past it the run fails as a VirtualDeadlock. */
export const LAB_TEST_VIRTUAL_LIMIT_MS = 120_000

export interface LabContext {
  readonly lab: ShardLab
  /** The test's own choices (values, pauses), from the run's seed. */
  readonly random: SeededRandom
  readonly seed: number
}

/**
 * One sharded-KV lab scenario in virtual time: a fresh controller and groups 100–102, driven by
 * one seed (network, timers, elections, the test's own choices), so `KV_SEED` replays it
 * exactly; cleanup whatever happens. Prints the seed, the replay command and the virtual time.
 */
export const labTest = (
  name: string,
  file: string,
  options: Omit<ShardLabOptions, "seed">,
  body: (ctx: LabContext) => Promise<void>,
  timeoutMs = LAB_TEST_TIMEOUT_MS,
) =>
  test(
    name,
    async () => {
      const seed = seedFromEnv()
      const replay = `KV_SEED=${seed} bun test ${file} -t "${name}"`
      const lab = new ShardLab({ ...options, seed })
      try {
        await lab.world.drive(
          async () => {
            await lab.init()
            try {
              await body({ lab, random: new SeededRandom(seed), seed })
            } finally {
              await lab.cleanup()
            }
          },
          { limitMs: LAB_TEST_VIRTUAL_LIMIT_MS },
        )
        console.log(`"${name}" passed: ${(lab.now() / 1000).toFixed(1)} s of virtual time (replay: ${replay})`)
      } catch (error) {
        console.error(`"${name}" failed at ${(lab.now() / 1000).toFixed(1)} s of virtual time; replay: ${replay}`)
        throw error
      }
    },
    timeoutMs,
  )

/** Settles with how many of `promises` fulfilled within `ms` of virtual time; a rejection fails the call. */
export const countCompletedWithin = async (
  lab: ShardLab,
  promises: readonly Promise<unknown>[],
  ms: number,
): Promise<number> => {
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
  await lab.sleep(ms)
  if (failure !== undefined) throw failure
  return done
}

/** Polls `condition` every `pollMs` of virtual time until it holds; fails naming `what` after `deadlineMs`. */
export const waitUntil = async (
  lab: ShardLab,
  what: string,
  deadlineMs: number,
  condition: () => boolean | Promise<boolean>,
  pollMs = 50,
): Promise<void> => {
  const end = lab.now() + deadlineMs
  while (!(await condition())) {
    if (lab.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting until ${what}`)
    await lab.sleep(pollMs)
  }
}
