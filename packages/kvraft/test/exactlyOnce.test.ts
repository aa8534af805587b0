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
    async (seed) => {
      const lab = await KvLab.make(3, { seed, unreliable: true, maxRaftStateBytes: 2000 })
      try {
        lab.network.setDuplicateRate(0.3)
        const clerk = await lab.makeClerk()
        const n = 200
        const keys = ["a", "b", "c", "d"]
        const appends = Array.from({ length: n }, (_, i) => lab.append(clerk, keys[i % keys.length]!, `<${i}>`))
        // Depose the leader while the appends are in flight.
        await Bun.sleep(100)
        const leader = lab.leader()
        if (leader !== undefined) {
          await lab.shutdownServer(leader)
          await Bun.sleep(500)
          await lab.startServer(leader)
        }
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
      } finally {
        await lab.cleanup()
      }
    },
  )
})
