/**
 * Proves that one clerk with many operations in flight at once (as a Bun app doing Promise.all)
 * gets each write applied exactly once, through loss and duplication and a leader change.
 */
import { describe, expect } from "bun:test"
import { KvLab } from "./support/kvLab.ts"
import { kvTest } from "./support/kvTest.ts"

describe("exactly-once with concurrent operations on one clerk", () => {
  kvTest(
    "200 concurrent appends from one clerk under loss and duplication each appear exactly once",
    "packages/kvraft/test/exactlyOnce.test.ts",
    (seed) =>
      new KvLab(3, { seed, unreliable: true, maxRaftStateBytes: 2000 }).run(async (lab) => {
        lab.network.setDuplicateRate(0.3)
        const clerk = await lab.makeClerk()
        const n = 200
        const keys = ["a", "b", "c", "d"]
        let acknowledged = 0
        const appends = Array.from({ length: n }, (_, i) =>
          lab.append(clerk, keys[i % keys.length]!, `<${i}>`).then(() => {
            acknowledged++
          }),
        )
        // Depose the leader while the appends are in flight: some acknowledged, not all.
        for (let waited = 0; acknowledged === 0; waited += 5) {
          if (waited >= 10_000) throw new Error("no append was acknowledged within 10 s")
          await lab.sleep(5)
        }
        expect(acknowledged).toBeLessThan(n)
        const leader = lab.leader()
        if (leader === undefined) throw new Error("no leader while appends are acknowledged")
        await lab.crash(leader)
        await lab.sleep(500)
        await lab.restart(leader)
        await Promise.all(appends)
        for (const [k, key] of keys.entries()) {
          const value = await lab.get(clerk, key)
          for (let i = k; i < n; i += keys.length) {
            const token = `<${i}>`
            const at = value.indexOf(token)
            expect(at).toBeGreaterThanOrEqual(0)
            expect(value.indexOf(token, at + 1)).toBe(-1)
          }
          expect(value.length).toBe(
            Array.from({ length: n }, (_, i) => i)
              .filter((i) => i % keys.length === k)
              .reduce((sum, i) => sum + `<${i}>`.length, 0),
          )
        }
        lab.checkLinearizable()
      }),
  )
})
