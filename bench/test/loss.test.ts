import { describe, expect, test } from "bun:test"
import { parseBenchArgs, UsageError } from "../cli.ts"
import { kvraftTarget } from "../targets/kvraft.ts"

describe("bench --loss and --dup", () => {
  test("are read as fractions and absent by default", () => {
    const args = parseBenchArgs(["put", "--loss", "0.01", "--dup", "0.05"])
    expect(args.lossRate).toBe(0.01)
    expect(args.dupRate).toBe(0.05)
    const plain = parseBenchArgs(["put"])
    expect(plain.lossRate).toBeUndefined()
    expect(plain.dupRate).toBeUndefined()
  })

  test("refuse what is not a fraction", () => {
    expect(() => parseBenchArgs(["--loss", "1"])).toThrow(UsageError)
    expect(() => parseBenchArgs(["--loss", "1%"])).toThrow(UsageError)
    expect(() => parseBenchArgs(["--dup", "0"])).toThrow(UsageError)
  })

  test("name the injected kvraft target for its fault", () => {
    expect(kvraftTarget({ maxRaftStateBytes: 1 }).name).toBe("kvraft")
    expect(kvraftTarget({ maxRaftStateBytes: 1, faults: { lossRate: 0.01 } }).name).toBe("kvraft-loss1%")
    expect(kvraftTarget({ maxRaftStateBytes: 1, faults: { dupRate: 0.05 } }).name).toBe("kvraft-dup5%")
  })
})
