/** The virtual-time driver gives up on runs that would otherwise hang the test process. */
import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { Seed, VirtualClock, VirtualDriver } from "../src/index.ts"

const driver = () => new VirtualDriver(new VirtualClock(), new Seed(1).stream("driver"))

describe("VirtualDriver limits", () => {
  test("a body that retries without delay at one instant is a livelock, not a hang", async () => {
    const d = driver()
    const spin = async () => {
      for (;;) await d.promise(Effect.void)
    }
    await expect(d.drive(spin, { maxEventsPerInstant: 2_000 })).rejects.toThrow(/livelock: 2000 events at 0 ms/)
  })

  test("a run past its wall-time limit is abandoned, naming the virtual time it reached", async () => {
    const d = driver()
    const forever = async () => {
      for (;;) await d.sleep(1)
    }
    await expect(d.drive(forever, { wallLimitMs: 100 })).rejects.toThrow(
      /abandoned after 100 ms of wall time at \d+ ms/,
    )
  })

  test("a body waiting on the host, not the world, is a deadlock", async () => {
    const d = driver()
    const host = () => new Promise<void>((resolve) => setTimeout(resolve, 50))
    await expect(d.drive(host)).rejects.toThrow(/outside the world/)
  })

  test("virtual time passes without wall time: an hour of sleeps in milliseconds", async () => {
    const d = driver()
    const started = performance.now()
    await d.drive(async () => {
      for (let i = 0; i < 3_600; i++) await d.sleep(1_000)
    })
    expect(d.clock.now()).toBe(3_600_000)
    expect(performance.now() - started).toBeLessThan(5_000)
  })
})
