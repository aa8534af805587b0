/**
 * Proves that one seed decides a whole lab run: the same 4B scenario (unreliable network,
 * partitions, crashes of every server, snapshots, five clerks) run twice with one seed performs
 * the same operations with the same results at the same virtual instants, and ends at the same
 * virtual time. Any choice taken from outside the world (host time, Math.random, host scheduling)
 * shows up here as two different histories.
 */
import { describe, expect, test } from "bun:test"
import { seedFromEnv } from "@kv/rpc"
import { genericTest } from "./support/genericTest.ts"
import { KV_TEST_TIMEOUT_MS } from "./support/kvTest.ts"

const FILE = "packages/kvraft/test/determinism.test.ts"
const NAME = "a seed replays a lab run exactly: same operations, same history, same virtual time"

describe("kv lab determinism", () => {
  test(
    NAME,
    async () => {
      const seed = seedFromEnv()
      const replay = `KV_SEED=${seed} bun test ${FILE}`
      const scenario = () =>
        genericTest({
          seed,
          nclients: 5,
          nservers: 5,
          unreliable: true,
          crash: true,
          partitions: true,
          maxRaftStateBytes: 1000,
          randomKeys: false,
          rounds: 2,
          loadMs: 3_000,
        })
      try {
        const first = await scenario()
        const second = await scenario()
        console.log(
          `seed ${seed}: ${first.ops} operations, history ${first.historyDigest}, ${(first.virtualMs / 1000).toFixed(1)} s of virtual time; replay: ${replay}`,
        )
        expect(first.ops).toBeGreaterThan(0)
        expect(second).toEqual(first)
      } catch (error) {
        console.error(`"${NAME}" failed; replay: ${replay}`)
        throw error
      }
    },
    KV_TEST_TIMEOUT_MS,
  )
})
