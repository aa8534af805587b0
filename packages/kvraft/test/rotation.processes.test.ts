/**
 * Proves that the cluster key of a running group is replaced without downtime: three kvraft
 * processes are restarted one at a time through the three steps of the runbook (docs/operations.md,
 * "Rotating the cluster key") while clients keep appending; no operation is refused or times out,
 * and every acknowledged append is in the final values exactly once.
 */
import { describe, expect, test } from "bun:test"
import type { RpcNodeShape } from "@kv/rpc"
import { pollUntil } from "@kv/testkit"
import { Effect, Exit } from "effect"
import { type KvClientShape, KvStatusMethod, makeKvClient, type StatusReply } from "../src/index.ts"
import { kvProcesses } from "./support/kvProcesses.ts"

const fixture = kvProcesses("kvraft-rotation")
const { processes, run } = fixture

const OLD = "the cluster key in force before the rotation"
const NEW = "the cluster key after the rotation"

/** The environment of a replica at each step: the key it seals with, and the other one it accepts. */
const steps: readonly { readonly name: string; readonly env: Record<string, string | undefined> }[] = [
  { name: "step 1: the new key accepted", env: { KV_CLUSTER_KEY: OLD, KV_CLUSTER_KEY_PREVIOUS: NEW } },
  { name: "step 2: the new key sent", env: { KV_CLUSTER_KEY: NEW, KV_CLUSTER_KEY_PREVIOUS: OLD } },
  { name: "step 3: the old key dropped", env: { KV_CLUSTER_KEY: NEW, KV_CLUSTER_KEY_PREVIOUS: undefined } },
]

interface Writer {
  readonly acknowledged: Map<string, string[]>
  failures: string[]
  stop(): Promise<void>
}

/** Clients appending `<writer>.<n>` (delimited, so one never matches inside another) to their own key as fast as they are answered, until stopped. */
const startWriters = (kv: KvClientShape, name: string, count: number, into: Map<string, string[]>): Writer => {
  let running = true
  const failures: string[] = []
  const loops = Array.from({ length: count }, async (_, w) => {
    const key = `key-${w}`
    for (let n = 0; running; n++) {
      const item = `<${name}.${w}.${n}>`
      const exit = await Effect.runPromiseExit(kv.append(key, item))
      if (Exit.isSuccess(exit)) {
        const list = into.get(key) ?? []
        list.push(item)
        into.set(key, list)
      } else {
        failures.push(`${item}: ${String(exit.cause)}`)
      }
    }
  })
  return {
    acknowledged: into,
    failures,
    async stop() {
      running = false
      await Promise.all(loops)
    },
  }
}

describe("cluster key rotation over real processes", () => {
  test("a 3-replica group rotated one replica at a time while clients append: nothing refused, no write lost", async () => {
    const { config, replicas } = await fixture.group()
    const start = (k: number, env: Record<string, string | undefined>) => fixture.start(config, k, { env })
    for (let k = 0; k < 3; k++) start(k, { KV_CLUSTER_KEY: OLD })

    const oldRpc = await fixture.node(OLD)
    const newRpc = await fixture.node(NEW)
    const options = { servers: replicas, deadlineMs: 30_000 }
    const oldKv = await run(makeKvClient(oldRpc, options))
    const newKv = await run(makeKvClient(newRpc, options))
    const acknowledged = new Map<string, string[]>()
    const caughtUp = (rpc: RpcNodeShape) =>
      pollUntil(
        "every replica to apply what the group committed",
        async () => {
          const statuses = await Promise.all(
            replicas.map((r) => run(rpc.call(r, KvStatusMethod, {}, { deadlineMs: 2_000 })) as Promise<StatusReply>),
          )
          const commit = Math.max(...statuses.map((s) => s.commitIndex))
          return statuses.every((s) => s.leader !== 0 && s.appliedIndex >= commit - 5)
        },
        { timeoutMs: 30_000, intervalMs: 100 },
      )

    // Clients on the old key run through steps 1 and 2; clients on the new key start once every
    // replica accepts it, and are the only ones left for step 3 (the runbook moves clients first).
    const before = startWriters(oldKv, "old", 3, acknowledged)
    await caughtUp(oldRpc)
    let after: Writer | undefined
    for (const [s, step] of steps.entries()) {
      if (s === 2) await before.stop()
      for (let k = 0; k < 3; k++) {
        // A graceful restart, as an operator's rolling restart: a leader hands off first.
        await processes.stop(`replica-${k}`)
        start(k, step.env)
        await caughtUp(s === 2 ? newRpc : oldRpc)
      }
      if (s === 0) after = startWriters(newKv, "new", 3, acknowledged)
    }
    await after?.stop()

    expect(before.failures).toEqual([])
    expect(after?.failures).toEqual([])
    let total = 0
    for (const [key, items] of acknowledged) {
      const value = await run(newKv.get(key))
      for (const item of items) expect(value.split(item).length - 1).toBe(1)
      total += items.length
    }
    console.log(`rotation: ${total} appends acknowledged across 9 restarts, none refused, none lost`)
    expect(total).toBeGreaterThan(100)
    // The old key alone is a stranger now.
    const refused = await Effect.runPromiseExit(
      oldRpc.call(replicas[0]!, KvStatusMethod, {}, { attemptTimeoutMs: 50, deadlineMs: 300 }),
    )
    expect(Exit.isFailure(refused)).toBe(true)
  }, 120_000)
})
