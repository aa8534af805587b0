import { test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { type LabOptions, RaftLab } from "./labHarness.ts"

/** Wall-clock guard against a pathologically slow run; the lab's bounds are checked in virtual time. */
export const LAB_TEST_TIMEOUT_MS = 120_000

export interface LabContext {
  readonly lab: RaftLab
  readonly random: SeededRandom
  readonly seed: number
}

/**
 * One lab scenario in virtual time: a fresh cluster of `servers`, driven by one seed (network,
 * timers, elections and the test's own choices), so `KV_SEED` replays it exactly; cleanup
 * whatever happens.
 */
export const labTest = (
  name: string,
  file: string,
  servers: number,
  options: Omit<LabOptions, "seed">,
  body: (ctx: LabContext) => Promise<void>,
  timeoutMs = LAB_TEST_TIMEOUT_MS,
) =>
  test(
    name,
    async () => {
      const seed = seedFromEnv()
      const lab = new RaftLab(servers, { ...options, seed })
      try {
        await lab.driver.drive(async () => {
          await lab.init()
          try {
            await body({ lab, random: new SeededRandom(seed), seed })
            lab.checkApplyErrors()
            console.log(`"${name}" passed: ${(lab.elapsedMs() / 1000).toFixed(1)} s of virtual time (seed ${seed})`)
          } finally {
            await lab.cleanup()
          }
        })
      } catch (error) {
        console.error(`"${name}" failed; replay: KV_SEED=${seed} bun test ${file} -t "${name}"`)
        throw error
      }
    },
    timeoutMs,
  )
