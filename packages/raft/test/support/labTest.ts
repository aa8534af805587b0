import { test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import { type LabOptions, RaftLab } from "./labHarness.ts"

/** The lab's per-test wall-clock bound (checkTimeout). */
export const LAB_TEST_TIMEOUT_MS = 120_000

export interface LabContext {
  readonly lab: RaftLab
  readonly random: SeededRandom
  readonly seed: number
}

/**
 * One lab scenario: a fresh cluster of `servers`, a seed printed for replay (it fixes the network's
 * and the test's random choices; real-time scheduling still varies), cleanup whatever happens.
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
      const lab = await RaftLab.make(servers, { ...options, seed })
      try {
        await body({ lab, random: new SeededRandom(seed), seed })
        lab.checkApplyErrors()
      } catch (error) {
        console.error(`"${name}" failed; replay: KV_SEED=${seed} bun test ${file} -t "${name}"`)
        throw error
      } finally {
        await lab.cleanup()
      }
    },
    timeoutMs,
  )
