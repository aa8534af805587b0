import { test } from "bun:test"
import { seedFromEnv } from "@kv/rpc"

export const KV_TEST_TIMEOUT_MS = 120_000

/** A seeded kv scenario: prints the replay command when it fails. */
export const kvTest = (
  name: string,
  file: string,
  body: (seed: number) => Promise<void>,
  timeoutMs = KV_TEST_TIMEOUT_MS,
) =>
  test(
    name,
    async () => {
      const seed = seedFromEnv()
      try {
        await body(seed)
      } catch (error) {
        console.error(`"${name}" failed; replay: KV_SEED=${seed} bun test ${file} -t "${name}"`)
        throw error
      }
    },
    timeoutMs,
  )
