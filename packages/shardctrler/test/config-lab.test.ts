/**
 * Proves that the configuration state machine passes the pure-logic parts of the MIT
 * 6.5840 shard-controller tests (src/shardctrler/test_test.go): TestBasic, TestMulti and
 * TestMinimalAgain, driven straight through `apply` instead of over RPC.
 */
import { describe, expect, test } from "bun:test"
import {
  type Config,
  type ConfigOp,
  ConfigStateMachine,
  configGids,
  type Gid,
  shardCounts,
} from "../src/config/index.ts"

const nShards = 10

/** The lab clerk's calls, failing the test on any error result. */
const clerk = (machine: ConfigStateMachine) => {
  const run = (op: ConfigOp): Config => {
    const result = machine.apply(op)
    if (!result.ok) throw new Error(`${op.op} failed: ${result.error}: ${result.message}`)
    if (result.config === undefined) throw new Error(`${op.op} returned no configuration`)
    return result.config
  }
  return {
    join: (groups: Record<string, string[]>) => run({ op: "join", groups }),
    leave: (gids: Gid[]) => run({ op: "leave", gids }),
    move: (shard: number, gid: Gid) => run({ op: "move", shard, gid }),
    query: (num: number) => run({ op: "query", num }),
  }
}
type Clerk = ReturnType<typeof clerk>

/** The lab's check(): exactly these groups, every shard on one of them, max <= min + 1. */
const check = (ck: Clerk, groups: readonly Gid[]): Config => {
  const config = ck.query(-1)
  expect(configGids(config)).toEqual([...groups].sort((a, b) => a - b))
  if (groups.length > 0) {
    for (const gid of config.shards) expect(groups).toContain(gid)
  }
  const counts = [...shardCounts(config).values()]
  if (counts.length > 0) expect(Math.max(...counts)).toBeLessThanOrEqual(Math.min(...counts) + 1)
  return config
}

/** Shards that are on some gid of `gids` after but were not on that gid before. */
const shardsMovedOnto = (before: Config, after: Config, gids: readonly Gid[]): number[] =>
  after.shards.flatMap((gid, shard) => (gids.includes(gid) && before.shards[shard] !== gid ? [shard] : []))

/** Shards that were on some gid of `gids` before and are elsewhere after. */
const shardsMovedOff = (before: Config, after: Config, gids: readonly Gid[]): number[] =>
  before.shards.flatMap((gid, shard) => (gids.includes(gid) && after.shards[shard] !== gid ? [shard] : []))

const changedShards = (before: Config, after: Config): number[] =>
  after.shards.flatMap((gid, shard) => (before.shards[shard] !== gid ? [shard] : []))

/** A fixed interleaving of several clerks' op lists, standing in for goroutines. */
const interleave = <T>(lists: readonly (readonly T[])[], seed: number): T[] => {
  const cursors = lists.map(() => 0)
  const out: T[] = []
  let state = seed >>> 0
  for (;;) {
    const ready = lists.flatMap((list, i) => ((cursors[i] ?? 0) < list.length ? [i] : []))
    if (ready.length === 0) return out
    state = (Math.imul(state, 1103515245) + 12345) >>> 0
    const pick = ready[state % ready.length] ?? 0
    const item = lists[pick]?.[cursors[pick] ?? 0]
    if (item !== undefined) out.push(item)
    cursors[pick] = (cursors[pick] ?? 0) + 1
  }
}

describe("TestBasic (shard controller)", () => {
  const machine = new ConfigStateMachine(nShards)
  const ck = clerk(machine)
  const cfa: Config[] = []

  test("Basic leave/join", () => {
    cfa.push(ck.query(-1))
    check(ck, [])

    ck.join({ 1: ["x", "y", "z"] })
    check(ck, [1])
    cfa.push(ck.query(-1))

    ck.join({ 2: ["a", "b", "c"] })
    check(ck, [1, 2])
    cfa.push(ck.query(-1))

    const cfx = ck.query(-1)
    expect(cfx.groups["1"]).toEqual(["x", "y", "z"])
    expect(cfx.groups["2"]).toEqual(["a", "b", "c"])

    ck.leave([1])
    check(ck, [2])
    cfa.push(ck.query(-1))

    ck.leave([2])
    cfa.push(ck.query(-1))
    expect(ck.query(-1).shards).toEqual(new Array(nShards).fill(0))
  })

  test("Historical queries", () => {
    expect(cfa.map((c) => c.num)).toEqual([0, 1, 2, 3, 4])
    for (const config of cfa) expect(ck.query(config.num)).toEqual(config)
    // -1 and anything past the latest both read the latest.
    expect(ck.query(cfa.length + 100)).toEqual(ck.query(-1))
  })

  test("Move", () => {
    const gid3 = 503
    const gid4 = 504
    ck.join({ [gid3]: ["3a", "3b", "3c"] })
    ck.join({ [gid4]: ["4a", "4b", "4c"] })
    for (let shard = 0; shard < nShards; shard++) {
      const before = ck.query(-1)
      const target = shard < nShards / 2 ? gid3 : gid4
      const after = ck.move(shard, target)
      expect(after.num).toBe(before.num + 1)
      expect(after.shards[shard]).toBe(target)
      // Move pins just that shard: nothing else changes.
      expect(changedShards(before, after).filter((s) => s !== shard)).toEqual([])
    }
    const cf2 = ck.query(-1)
    for (let shard = 0; shard < nShards; shard++) {
      expect(cf2.shards[shard]).toBe(shard < nShards / 2 ? gid3 : gid4)
    }
    ck.leave([gid3])
    ck.leave([gid4])
    check(ck, [])
  })

  const npara = 10
  const gids = Array.from({ length: npara }, (_, i) => i * 10 + 100)

  test("Concurrent leave/join", () => {
    const perClerk: ConfigOp[][] = gids.map((gid) => [
      { op: "join", groups: { [gid + 1000]: [`s${gid}a`] } },
      { op: "join", groups: { [gid]: [`s${gid}b`] } },
      { op: "leave", gids: [gid + 1000] },
    ])
    for (const op of interleave(perClerk, 7)) {
      const result = machine.apply(op)
      expect(result.ok).toBe(true)
    }
    check(ck, gids)
  })

  const newGids = Array.from({ length: 5 }, (_, i) => npara + 1 + i)
  let c2: Config | undefined

  test("Minimal transfers after joins", () => {
    const c1 = ck.query(-1)
    for (const gid of newGids) ck.join({ [gid]: [`${gid}a`, `${gid}b`, `${gid}c`] })
    c2 = check(ck, [...gids, ...newGids])
    expect(shardsMovedOnto(c1, c2, gids)).toEqual([])
  })

  test("Minimal transfers after leaves", () => {
    if (c2 === undefined) throw new Error("depends on the previous test")
    for (const gid of newGids) ck.leave([gid])
    const c3 = check(ck, gids)
    expect(shardsMovedOff(c2, c3, gids)).toEqual([])
  })
})

describe("TestMulti (shard controller)", () => {
  const machine = new ConfigStateMachine(nShards)
  const ck = clerk(machine)
  const cfa: Config[] = []

  test("Multi-group join/leave", () => {
    cfa.push(ck.query(-1))
    check(ck, [])

    ck.join({ 1: ["x", "y", "z"], 2: ["a", "b", "c"] })
    check(ck, [1, 2])
    cfa.push(ck.query(-1))

    ck.join({ 3: ["j", "k", "l"] })
    check(ck, [1, 2, 3])
    cfa.push(ck.query(-1))

    const cfx = ck.query(-1)
    expect(cfx.groups["1"]).toEqual(["x", "y", "z"])
    expect(cfx.groups["2"]).toEqual(["a", "b", "c"])
    expect(cfx.groups["3"]).toEqual(["j", "k", "l"])

    ck.leave([1, 3])
    check(ck, [2])
    cfa.push(ck.query(-1))
    expect(ck.query(-1).groups["2"]).toEqual(["a", "b", "c"])

    ck.leave([2])
    check(ck, [])
    cfa.push(ck.query(-1))
  })

  test("Historical queries", () => {
    for (const config of cfa) expect(ck.query(config.num)).toEqual(config)
  })

  const npara = 10
  const gids = Array.from({ length: npara }, (_, i) => i + 1000)

  test("Concurrent multi leave/join", () => {
    const perClerk: ConfigOp[][] = gids.map((gid) => [
      {
        op: "join",
        groups: {
          [gid]: [`${gid}a`, `${gid}b`, `${gid}c`],
          [gid + 1000]: [`${gid + 1000}a`],
          [gid + 2000]: [`${gid + 2000}a`],
        },
      },
      { op: "leave", gids: [gid + 1000, gid + 2000] },
    ])
    for (const op of interleave(perClerk, 11)) expect(machine.apply(op).ok).toBe(true)
    check(ck, gids)
  })

  const newGids = Array.from({ length: 5 }, (_, i) => npara + 1 + i)
  let c2: Config | undefined

  test("Minimal transfers after multijoins", () => {
    const c1 = ck.query(-1)
    ck.join(Object.fromEntries(newGids.map((gid) => [gid, [`${gid}a`, `${gid}b`, `${gid}c`]])))
    c2 = check(ck, [...gids, ...newGids])
    expect(shardsMovedOnto(c1, c2, gids)).toEqual([])
  })

  test("Minimal transfers after multileaves", () => {
    if (c2 === undefined) throw new Error("depends on the previous test")
    ck.leave(newGids)
    const c3 = check(ck, gids)
    expect(shardsMovedOff(c2, c3, gids)).toEqual([])
  })

  test("Check Same config on servers (replicas applying one log agree)", () => {
    // The lab kills the leader and asks the next one; whichever replica answers must
    // have computed the same configurations from the same log.
    const replay = new ConfigStateMachine(nShards)
    const log: ConfigOp[] = [
      { op: "join", groups: { 1: ["x"], 2: ["y"], 3: ["z"] } },
      { op: "leave", gids: [2] },
      { op: "join", groups: { 4: ["w"], 5: ["v"] } },
      { op: "move", shard: 0, gid: 5 },
      { op: "join", groups: { 6: ["u"] } },
      { op: "leave", gids: [1, 4] },
    ]
    const other = new ConfigStateMachine(nShards)
    for (const op of log) {
      replay.apply(op)
      other.apply(op)
    }
    expect(other.latest()).toEqual(replay.latest())
    expect(other.configs()).toEqual(replay.configs())
  })
})

describe("TestMinimalAgain (shard controller)", () => {
  test("a third join moves at most NShards/3 + 1 shards, all onto the new group; its leave moves only its shards", () => {
    const ck = clerk(new ConfigStateMachine(nShards))
    ck.join({ 1: ["1a"] })
    const beforeThird = ck.join({ 2: ["2a"] })
    const afterThird = ck.join({ 3: ["3a"] })

    const moved = changedShards(beforeThird, afterThird)
    for (const shard of moved) expect(afterThird.shards[shard]).toBe(3)
    expect(moved.length).toBeGreaterThan(0)
    expect(moved.length).toBeLessThanOrEqual(Math.floor(nShards / 3) + 1)

    const afterLeave = ck.leave([3])
    for (const shard of changedShards(afterThird, afterLeave)) expect(afterThird.shards[shard]).toBe(3)
    check(ck, [1, 2])
  })
})
