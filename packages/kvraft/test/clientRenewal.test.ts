/**
 * Proves that a kvraft client renews an expired session by itself: writes refused because the
 * session is gone (and certainly not applied) are resent under a fresh one, each applied once;
 * an application sees an error only when a write's outcome is truly unknown.
 */
import { describe, expect } from "bun:test"
import type { NodeId } from "@kv/raft"
import { SimNetwork } from "@kv/rpc"
import { SimProcesses } from "@kv/testkit"
import { Effect } from "effect"
import { type KvClientShape, type KvLimits, type KvServerShape, makeKvClient, makeKvServer } from "../src/index.ts"
import { kvTest } from "./support/kvTest.ts"

const FILE = "packages/kvraft/test/clientRenewal.test.ts"
const TTL_MS = 400

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

/** Three replicas on a SimNetwork with short-lived sessions. */
const startGroup = async (seed: number, limits: Partial<KvLimits>) => {
  const network = new SimNetwork({ seed })
  const processes = new SimProcesses(network)
  const peers: Record<number, string> = { 1: "kv-0", 2: "kv-1", 3: "kv-2" }
  const servers: KvServerShape[] = []
  for (let i = 0; i < 3; i++) {
    servers.push(
      await processes.start(`kv-${i}`, makeKvServer({ id: (i + 1) as NodeId, peers, limits, seed: seed + 7919 * i })),
    )
  }
  const rpc = await processes.client("clerks")
  const clerk = () => run(makeKvClient(rpc, { servers: Object.values(peers), deadlineMs: 20_000, perServerMs: 500 }))
  const sessions = () => Math.max(...servers.map((s) => s.gauges().kv_client_sessions ?? 0))
  return { processes, clerk, sessions }
}

/** Writes from `other` until `ms` of wall time have passed: log time moves on only with commands. */
const keepBusy = async (other: KvClientShape, ms: number) => {
  const until = Date.now() + ms
  for (let i = 0; Date.now() < until; i++) {
    await run(other.put("busy", String(i)))
    await Bun.sleep(20)
  }
}

describe("clients renew expired sessions", () => {
  kvTest(
    "a client idle longer than the session lifetime just works: concurrent writes after the idle time each apply once",
    FILE,
    async (seed) => {
      const group = await startGroup(seed, { sessionTtlMs: TTL_MS, maxLogTimeStepMs: TTL_MS })
      try {
        const a = await group.clerk()
        const b = await group.clerk()
        await Promise.all(Array.from({ length: 5 }, (_, i) => run(a.put(`k${i}`, "x"))))
        // a is idle while b's writes move log time past a's session lifetime, three times over.
        await keepBusy(b, 3 * TTL_MS)
        const results = await Promise.all(
          Array.from({ length: 5 }, (_, i) => Effect.runPromiseExit(a.append(`k${i}`, "y"))),
        )
        for (const exit of results) expect(exit._tag).toBe("Success")
        for (let i = 0; i < 5; i++) expect(await run(a.get(`k${i}`))).toBe("xy")
        // And a keeps working under its new session.
        await run(a.append("k0", "z"))
        expect(await run(a.get("k0"))).toBe("xyz")
      } finally {
        await group.processes.cleanup()
      }
    },
    60_000,
  )

  kvTest(
    "a client the servers have forgotten gets OutcomeUnknown once, then works",
    FILE,
    async (seed) => {
      // Only one expired session is remembered: one-shot clients push a's out.
      const group = await startGroup(seed, { sessionTtlMs: TTL_MS, maxLogTimeStepMs: TTL_MS, maxExpiredSessions: 1 })
      try {
        const a = await group.clerk()
        await run(a.put("k", "1"))
        const until = Date.now() + 3 * TTL_MS
        for (let i = 0; Date.now() < until; i++) {
          const once = await group.clerk()
          await run(once.put("busy", String(i)))
          await Bun.sleep(20)
        }
        const exit = await Effect.runPromiseExit(a.put("k", "2"))
        expect(exit._tag).toBe("Failure")
        expect(JSON.stringify(exit)).toContain("OutcomeUnknown")
        await run(a.put("k", "3"))
        expect(await run(a.get("k"))).toBe("3")
      } finally {
        await group.processes.cleanup()
      }
    },
    60_000,
  )
})
