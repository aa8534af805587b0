/**
 * Proves that a sharded clerk's operation ends with `Timeout` at its deadline (`deadlineMs`), not
 * before and not much after, on each of its paths: the cached configuration's group silent (the
 * first attempt alone, and the first attempt then retries), and no configuration to be had (the
 * controllers down before the first operation). The usual operation runs without a timer of its
 * own, so these pin the bound down.
 */
import { describe, expect } from "bun:test"
import { Exit } from "effect"
import {
  controllerAddresses,
  groupAddresses,
  type OneGroupCluster,
  seededScenario,
  startOneGroupCluster,
} from "./support/oneGroupCluster.ts"

const seeded = seededScenario("packages/shardkv/test/clientDeadline.test.ts")

/** How long past its deadline an operation may take to end (a resend's turn, a refresh). */
const SLACK_MS = 250

const expectTimeoutAt = async (
  cluster: OneGroupCluster,
  now: () => number,
  deadlineMs: number,
  operation: Parameters<OneGroupCluster["exit"]>[0],
) => {
  const from = now()
  const exit = await cluster.exit(operation)
  const took = now() - from
  expect(Exit.isFailure(exit)).toBe(true)
  expect(JSON.stringify(exit)).toContain("Timeout")
  expect(took).toBeGreaterThanOrEqual(deadlineMs - 1)
  expect(took).toBeLessThanOrEqual(deadlineMs + SLACK_MS)
}

describe("a sharded clerk's deadline", () => {
  for (const deadlineMs of [1_500, 5_000]) {
    seeded(`a write and a read to a silent group end with Timeout at ${deadlineMs} ms`, async (world) => {
      const cluster = await startOneGroupCluster(world, {})
      try {
        const clerk = await cluster.clerk(deadlineMs)
        await cluster.run(clerk.put("k", "v"))
        for (const address of groupAddresses) await cluster.processes.stop(address)
        await expectTimeoutAt(cluster, () => world.now(), deadlineMs, clerk.put("k", "w"))
        await expectTimeoutAt(cluster, () => world.now(), deadlineMs, clerk.get("k"))
      } finally {
        await cluster.processes.cleanup()
      }
    })
  }

  seeded("with no configuration to be had, a first operation ends with Timeout at its deadline", async (world) => {
    const cluster = await startOneGroupCluster(world, {})
    try {
      for (const address of controllerAddresses) await cluster.processes.stop(address)
      const clerk = await cluster.clerk(1_500)
      await expectTimeoutAt(cluster, () => world.now(), 1_500, clerk.get("k"))
      await expectTimeoutAt(cluster, () => world.now(), 1_500, clerk.put("k", "v"))
    } finally {
      await cluster.processes.cleanup()
    }
  })
})
