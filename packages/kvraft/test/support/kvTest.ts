import { test } from "bun:test"
import { seedFromEnv } from "@kv/rpc"
import type { KvRunSummary } from "./kvLab.ts"

/** Wall-clock guard against a pathologically slow run; the lab's bounds are checked in virtual time. */
export const KV_TEST_TIMEOUT_MS = 120_000

/**
 * A seeded kv scenario in virtual time (one seed decides the whole run, `KV_SEED` replays it):
 * prints the seed, the replay command and the virtual time it took; the replay command again when
 * it fails.
 */
export const kvTest = (
  name: string,
  file: string,
  scenario: (seed: number) => Promise<KvRunSummary>,
  timeoutMs = KV_TEST_TIMEOUT_MS,
) =>
  test(
    name,
    async () => {
      const seed = seedFromEnv()
      const replay = `KV_SEED=${seed} bun test ${file} -t "${name}"`
      try {
        const { ops, virtualMs } = await scenario(seed)
        console.log(
          `"${name}": ${ops} operations in ${(virtualMs / 1000).toFixed(1)} s of virtual time; replay: ${replay}`,
        )
      } catch (error) {
        console.error(`"${name}" failed; replay: ${replay}`)
        throw error
      }
    },
    timeoutMs,
  )
