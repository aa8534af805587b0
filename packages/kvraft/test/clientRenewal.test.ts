/**
 * Proves that a kvraft client renews an expired session by itself: writes refused because the
 * session is gone (and certainly not applied) are resent under a fresh one, each applied once;
 * an application sees an error only when a write's outcome is truly unknown.
 */
import { describe, expect } from "bun:test"
import type { KvLimits } from "../src/index.ts"
import { type Clerk, KvLab } from "./support/kvLab.ts"
import { kvTest } from "./support/kvTest.ts"

const FILE = "packages/kvraft/test/clientRenewal.test.ts"
const TTL_MS = 400

/** Three replicas with short-lived sessions. */
const group = (seed: number, limits: Partial<KvLimits>) => new KvLab(3, { seed, maxRaftStateBytes: -1, limits })

/** Sessions expired, as the replica that has expired the most reports them. */
const expiredSessions = (lab: KvLab) =>
  Math.max(...[0, 1, 2].map((i) => lab.server(i)?.gauges().kv_client_sessions_expired ?? 0))

/** Writes from `other` for `ms` of virtual time: log time moves on only with commands. */
const keepBusy = async (lab: KvLab, other: Clerk, ms: number) => {
  const until = lab.now() + ms
  for (let i = 0; lab.now() < until; i++) {
    await lab.put(other, "busy", String(i))
    await lab.sleep(20)
  }
}

describe("clients renew expired sessions", () => {
  kvTest(
    "a client idle longer than the session lifetime just works: concurrent writes after the idle time each apply once",
    FILE,
    (seed) =>
      group(seed, { sessionTtlMs: TTL_MS, maxLogTimeStepMs: TTL_MS }).run(async (lab) => {
        const a = await lab.makeClerk()
        const b = await lab.makeClerk()
        await Promise.all(Array.from({ length: 5 }, (_, i) => lab.put(a, `k${i}`, "x")))
        // a is idle while b's writes move log time past a's session lifetime, three times over.
        await keepBusy(lab, b, 3 * TTL_MS)
        expect(expiredSessions(lab)).toBeGreaterThanOrEqual(1)
        // Each resolves (lab.append throws on a failure), and each applies once.
        await Promise.all(Array.from({ length: 5 }, (_, i) => lab.append(a, `k${i}`, "y")))
        for (let i = 0; i < 5; i++) expect(await lab.get(a, `k${i}`)).toBe("xy")
        // And a keeps working under its new session.
        await lab.append(a, "k0", "z")
        expect(await lab.get(a, "k0")).toBe("xyz")
        lab.checkLinearizable()
      }),
  )

  kvTest("a client the servers have forgotten gets OutcomeUnknown once, then works", FILE, (seed) =>
    // Only one expired session is remembered: one-shot clients push a's out.
    group(seed, { sessionTtlMs: TTL_MS, maxLogTimeStepMs: TTL_MS, maxExpiredSessions: 1 }).run(async (lab) => {
      const a = await lab.makeClerk()
      await lab.put(a, "k", "1")
      const until = lab.now() + 3 * TTL_MS
      for (let i = 0; lab.now() < until; i++) {
        const once = await lab.makeClerk()
        await lab.put(once, "busy", String(i))
        await lab.sleep(20)
      }
      const exit = await lab.world.driver.exit(a.client.put("k", "2"))
      expect(exit._tag).toBe("Failure")
      expect(JSON.stringify(exit)).toContain("OutcomeUnknown")
      await lab.put(a, "k", "3")
      expect(await lab.get(a, "k")).toBe("3")
    }),
  )
})
