/**
 * Proves that the start-up disk probe runs on a thread of its own: a server starts it, then reads
 * and restores its snapshot on the main thread (a long synchronous stretch) while the probe's
 * syncs go on beside it, instead of waiting for them first.
 */
import { expect, test } from "bun:test"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { probeFsyncOffThread } from "../src/process/diskCheck.ts"

test("the disk probe writes and syncs while the main thread is busy, and answers after", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kv-disk-probe-"))
  try {
    const probeFile = join(dir, `.fsync-probe-${process.pid}`)
    const pending = probeFsyncOffThread(dir, 10)
    // The main thread held as a restore holds it, never yielding: the probe's file must appear and
    // go away meanwhile, which only another thread can do.
    const giveUp = performance.now() + 15_000
    let seen = false
    while (performance.now() < giveUp) {
      const present = existsSync(probeFile)
      if (present) seen = true
      else if (seen) break
    }
    expect(seen).toBe(true)
    expect(existsSync(probeFile)).toBe(false)
    const probe = await pending
    expect(probe.samples).toBe(10)
    expect(probe.p90Ms).toBeGreaterThanOrEqual(probe.p50Ms)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}, 30_000)

test("a directory that cannot be made rejects the probe", async () => {
  const file = join(mkdtempSync(join(tmpdir(), "kv-disk-probe-")), "a-file")
  await Bun.write(file, "x")
  try {
    await expect(probeFsyncOffThread(join(file, "data"))).rejects.toThrow()
  } finally {
    rmSync(join(file, ".."), { recursive: true, force: true })
  }
})
