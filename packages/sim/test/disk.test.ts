// Proves that the simulated disk loses unsynced data on a crash, may tear the last write, and fails with typed errors.
import { describe, expect, test } from "bun:test"
import { Result } from "effect"
import { Seed, SimDisk } from "../src/index.ts"

const enc = (s: string) => new TextEncoder().encode(s)
const dec = (b: Uint8Array) => new TextDecoder().decode(b)
const text = (disk: SimDisk, path: string) => {
  const r = disk.read(path)
  return Result.isSuccess(r) ? dec(r.success) : undefined
}

describe("simulated disk", () => {
  test("a crash keeps fsynced data and loses the rest", () => {
    const disk = new SimDisk(new Seed(1).stream("disk"), { tearProbability: 0 })
    disk.append("wal", enc("one "))
    disk.fsync("wal")
    disk.fsyncDir()
    disk.append("wal", enc("two "))
    disk.append("new", enc("never named durably"))
    disk.fsync("new")
    expect(text(disk, "wal")).toBe("one two ")
    disk.crash()
    expect(text(disk, "wal")).toBe("one ")
    expect(disk.exists("new")).toBe(false)
  })

  test("a crash may tear the first unsynced write at any byte, and every tear point is reachable", () => {
    const write = "abcd"
    const expected = ["ok:", "ok:a", "ok:ab", "ok:abc", "ok:abcd"]
    const prepare = (seed: number) => {
      const disk = new SimDisk(new Seed(seed).stream("disk"), { tearProbability: 0.8 })
      disk.append("f", enc("ok:"))
      disk.fsync("f")
      disk.fsyncDir()
      disk.append("f", enc(write))
      disk.append("f", enc("later"))
      return disk
    }
    expect(prepare(0).crashImages("f").map(dec)).toEqual(expected)
    const seen = new Set<string>()
    for (let seed = 0; seed < 200; seed++) {
      const disk = prepare(seed)
      disk.crash()
      const after = text(disk, "f")!
      expect(expected).toContain(after)
      seen.add(after)
    }
    expect([...seen].sort()).toEqual(expected)
  })

  test("rename is atomic and durable after fsyncDir; an undone rename restores the old name", () => {
    const disk = new SimDisk(new Seed(2).stream("disk"), { tearProbability: 0 })
    disk.write("snap.tmp", 0, enc("v2"))
    disk.fsync("snap.tmp")
    disk.fsyncDir()
    disk.rename("snap.tmp", "snap")
    expect(disk.list()).toEqual(["snap"])
    disk.crash()
    expect(disk.list()).toEqual(["snap.tmp"])
    disk.rename("snap.tmp", "snap")
    disk.fsyncDir()
    disk.crash()
    expect(text(disk, "snap")).toBe("v2")
  })

  test("truncate and write at an offset are visible now and durable after fsync", () => {
    const disk = new SimDisk(new Seed(3).stream("disk"), { tearProbability: 0 })
    disk.append("f", enc("hello world"))
    disk.truncate("f", 5)
    disk.write("f", 0, enc("J"))
    expect(text(disk, "f")).toBe("Jello")
    disk.fsync("f")
    disk.fsyncDir()
    disk.crash()
    expect(text(disk, "f")).toBe("Jello")
  })

  test("a failed fsync is a typed FsyncFailed and leaves the data undurable", () => {
    const disk = new SimDisk(new Seed(4).stream("disk"), { tearProbability: 0 })
    disk.append("f", enc("a"))
    disk.fsync("f")
    disk.fsyncDir()
    disk.append("f", enc("b"))
    disk.failFsync()
    const failed = disk.fsync("f")
    expect(Result.isFailure(failed) && failed.failure._tag).toBe("FsyncFailed")
    disk.crash()
    expect(text(disk, "f")).toBe("a")
  })

  test("a full disk fails writes with a typed DiskFull and changes nothing", () => {
    const disk = new SimDisk(new Seed(5).stream("disk"), { capacityBytes: 8 })
    expect(Result.isSuccess(disk.append("f", enc("12345")))).toBe(true)
    const full = disk.append("f", enc("6789"))
    expect(Result.isFailure(full) && full.failure._tag).toBe("DiskFull")
    if (Result.isFailure(full)) expect(full.failure.freeBytes).toBe(3)
    expect(text(disk, "f")).toBe("12345")
    disk.setCapacity(100)
    expect(Result.isSuccess(disk.append("f", enc("6789")))).toBe(true)
    const missing = disk.read("nope")
    expect(Result.isFailure(missing) && missing.failure._tag).toBe("FileNotFound")
  })
})
