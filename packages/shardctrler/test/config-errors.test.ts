/** Proves that invalid operations are rejected with a typed error, a clear message, and no new configuration. */
import { describe, expect, test } from "bun:test"
import { type ConfigOp, type ConfigResult, ConfigStateMachine } from "../src/config/index.ts"

const machineWithGroups = () => {
  const machine = new ConfigStateMachine(10)
  machine.apply({ op: "join", groups: { 1: ["a:1"], 2: ["b:1"] } })
  return machine
}

/** Applies `op`, expects rejection with `error`, and checks the history did not grow. */
const rejects = (op: ConfigOp, error: string): string => {
  const machine = machineWithGroups()
  const before = machine.configs()
  const result: ConfigResult = machine.apply(op)
  expect(result.ok).toBe(false)
  if (result.ok) throw new Error("unreachable")
  expect(result.error).toBe(error as typeof result.error)
  expect(result.message.length).toBeGreaterThan(0)
  expect(machine.configs()).toEqual(before)
  return result.message
}

/** For operations a well-typed caller cannot build but a decoded message might carry. */
const untyped = (op: unknown): ConfigOp => op as ConfigOp

describe("join errors", () => {
  test("joining an existing gid is GroupExists", () => {
    expect(rejects({ op: "join", groups: { 2: ["c:1"] } }, "GroupExists")).toContain("gid 2")
  })

  test("a join with one new and one existing gid is rejected whole", () => {
    rejects({ op: "join", groups: { 3: ["c:1"], 1: ["d:1"] } }, "GroupExists")
  })

  test("a gid that is not a positive integer is BadGid", () => {
    expect(rejects({ op: "join", groups: { 0: ["c:1"] } }, "BadGid")).toContain('"0"')
    rejects({ op: "join", groups: { "-4": ["c:1"] } }, "BadGid")
    rejects({ op: "join", groups: { "1.5": ["c:1"] } }, "BadGid")
    rejects({ op: "join", groups: { "07": ["c:1"] } }, "BadGid")
    rejects({ op: "join", groups: { web: ["c:1"] } }, "BadGid")
    rejects({ op: "join", groups: { [String(2 ** 53)]: ["c:1"] } }, "BadGid")
  })

  test("a group with no servers is BadRequest", () => {
    expect(rejects({ op: "join", groups: { 3: [] } }, "BadRequest")).toContain("gid 3 has no servers")
    rejects(untyped({ op: "join", groups: { 3: "c:1" } }), "BadRequest")
    rejects(untyped({ op: "join", groups: { 3: ["c:1", 7] } }), "BadRequest")
    rejects({ op: "join", groups: { 3: [""] } }, "BadRequest")
  })

  test("a join naming no groups is BadRequest", () => {
    rejects({ op: "join", groups: {} }, "BadRequest")
    rejects(untyped({ op: "join", groups: null }), "BadRequest")
    rejects(untyped({ op: "join", groups: [["3", ["c:1"]]] }), "BadRequest")
  })

  test("the reported error does not depend on key insertion order", () => {
    const a = rejects({ op: "join", groups: { web: ["x"], "-1": ["y"] } }, "BadGid")
    const b = rejects({ op: "join", groups: { "-1": ["y"], web: ["x"] } }, "BadGid")
    expect(a).toBe(b)
  })
})

describe("leave errors", () => {
  test("leaving an unknown gid is UnknownGroup, and the known ones stay", () => {
    expect(rejects({ op: "leave", gids: [1, 9] }, "UnknownGroup")).toContain("gid 9")
  })

  test("a gid that is not a positive integer is BadGid", () => {
    rejects({ op: "leave", gids: [0] }, "BadGid")
    rejects({ op: "leave", gids: [1, -2] }, "BadGid")
    rejects({ op: "leave", gids: [1.5] }, "BadGid")
    rejects(untyped({ op: "leave", gids: ["1"] }), "BadGid")
  })

  test("an empty or missing gid list is BadRequest", () => {
    rejects({ op: "leave", gids: [] }, "BadRequest")
    rejects(untyped({ op: "leave" }), "BadRequest")
  })

  test("a repeated gid leaves once", () => {
    const machine = machineWithGroups()
    const result = machine.apply({ op: "leave", gids: [2, 2] })
    expect(result.ok).toBe(true)
    expect(machine.latest().num).toBe(2)
    expect(Object.keys(machine.latest().groups)).toEqual(["1"])
  })
})

describe("move errors", () => {
  test("a shard outside [0, nShards) is BadShard", () => {
    expect(rejects({ op: "move", shard: 10, gid: 1 }, "BadShard")).toContain("[0, 10)")
    rejects({ op: "move", shard: -1, gid: 1 }, "BadShard")
    rejects({ op: "move", shard: 0.5, gid: 1 }, "BadShard")
    rejects(untyped({ op: "move", shard: "0", gid: 1 }), "BadShard")
  })

  test("a gid that is not a positive integer is BadGid", () => {
    rejects({ op: "move", shard: 0, gid: 0 }, "BadGid")
    rejects({ op: "move", shard: 0, gid: -1 }, "BadGid")
  })

  test("moving to a gid not in the configuration is UnknownGroup", () => {
    expect(rejects({ op: "move", shard: 0, gid: 3 }, "UnknownGroup")).toContain("gid 3")
  })
})

describe("query and unknown operations", () => {
  test("a query number below -1 or not an integer is BadRequest", () => {
    rejects({ op: "query", num: -2 }, "BadRequest")
    rejects({ op: "query", num: 0.5 }, "BadRequest")
  })

  test("an unknown operation is BadRequest", () => {
    expect(rejects(untyped({ op: "rebalance" }), "BadRequest")).toContain('"rebalance"')
  })

  test("a query never creates a configuration", () => {
    const machine = machineWithGroups()
    const result = machine.apply({ op: "query", num: -1 })
    expect(result).toEqual({ ok: true, config: machine.latest() })
    expect(machine.configs().length).toBe(2)
  })
})

describe("the history belongs to the state machine", () => {
  test("configs() is a copy of the history list", () => {
    const machine = machineWithGroups()
    ;(machine.configs() as unknown[]).length = 0
    expect(machine.configs().length).toBe(2)
  })

  test("a join does not keep a reference to the caller's server list", () => {
    const machine = new ConfigStateMachine(4)
    const servers = ["a:1"]
    machine.apply({ op: "join", groups: { 1: servers } })
    servers.push("b:1")
    expect(machine.latest().groups["1"]).toEqual(["a:1"])
  })
})

test("the shard count must be a positive integer", () => {
  expect(() => new ConfigStateMachine(0)).toThrow(RangeError)
  expect(() => new ConfigStateMachine(2.5)).toThrow(RangeError)
  expect(new ConfigStateMachine().nShards).toBe(10)
})

describe("group incarnations", () => {
  const machine = () => {
    const m = new ConfigStateMachine(10)
    expect(m.apply({ op: "register", gid: 1, incarnation: "a", configNum: 0 })).toEqual({ ok: true })
    expect(m.apply({ op: "register", gid: 1, incarnation: "a", configNum: 1 })).toEqual({ ok: true })
    m.apply({ op: "join", groups: { 1: ["a:1"] } })
    return m
  }

  test("another incarnation of a registered gid is told it is a successor", () => {
    const m = machine()
    expect(m.apply({ op: "register", gid: 1, incarnation: "b", configNum: 0 })).toMatchObject({ error: "Successor" })
    expect(m.apply({ op: "register", gid: 2, incarnation: "b", configNum: 0 })).toEqual({ ok: true })
  })

  test("a successor takes over a gid whose group had left, and the gid stays usable", () => {
    const m = machine()
    m.apply({ op: "join", groups: { 2: ["b:1"] } })
    m.apply({ op: "leave", gids: [1] })
    expect(m.apply({ op: "register", gid: 1, incarnation: "a", configNum: m.latest().num })).toEqual({ ok: true })
    expect(m.apply({ op: "succeed", gid: 1, incarnation: "c" })).toEqual({ ok: true })
    expect(m.apply({ op: "register", gid: 1, incarnation: "c", configNum: 0 })).toEqual({ ok: true })
    expect(m.apply({ op: "register", gid: 1, incarnation: "a", configNum: 9 })).toMatchObject({ error: "Successor" })
    expect(m.apply({ op: "join", groups: { 1: ["c:1"] } })).toMatchObject({ ok: true })
  })

  test("a successor carries on from its predecessor's last configuration, even if the gid joined again before it came up", () => {
    const m = machine()
    m.apply({ op: "join", groups: { 2: ["b:1"] } })
    m.apply({ op: "leave", gids: [1] })
    const left = m.latest().num
    expect(m.apply({ op: "register", gid: 1, incarnation: "a", configNum: left })).toEqual({ ok: true })
    // The group is wiped; an admin joins its gid again before the new incarnation is up.
    m.apply({ op: "join", groups: { 1: ["c:1"] } })
    m.apply({ op: "leave", gids: [1] })
    expect(m.apply({ op: "succeed", gid: 1, incarnation: "c" })).toEqual({ ok: true })
    expect(m.incarnationOf(1)).toEqual({ incarnation: "c", startAfter: left })
    // A retried succeed and a later registration keep the starting point; so does a snapshot.
    expect(m.apply({ op: "succeed", gid: 1, incarnation: "c" })).toEqual({ ok: true })
    expect(m.apply({ op: "register", gid: 1, incarnation: "c", configNum: m.latest().num })).toEqual({ ok: true })
    expect(ConfigStateMachine.fromSnapshot(m.snapshot()).incarnationOf(1)).toEqual({
      incarnation: "c",
      startAfter: left,
    })
    // A snapshot from before successors carried a starting point restores with none.
    const old = m.snapshot()
    const threeFields = { ...old, incarnations: old.incarnations?.map(([gid, inc, last]) => [gid, inc, last] as const) }
    expect(ConfigStateMachine.fromSnapshot(threeFields).incarnationOf(1)).toEqual({ incarnation: "c", startAfter: 0 })
  })

  test("a gid whose group vanished while it held shards is retired: no successor, no join", () => {
    const m = machine()
    const retired = m.apply({ op: "succeed", gid: 1, incarnation: "c" })
    expect(retired).toMatchObject({ error: "GidRetired" })
    expect((retired as { message: string }).message).toContain("unused gid")
    m.apply({ op: "leave", gids: [1] })
    expect(m.apply({ op: "join", groups: { 1: ["c:1"] } })).toMatchObject({ error: "GidRetired" })
    expect(m.apply({ op: "register", gid: 1, incarnation: "a", configNum: 5 })).toMatchObject({ error: "GidRetired" })
    const restored = ConfigStateMachine.fromSnapshot(m.snapshot())
    expect(restored.isRetired(1)).toBe(true)
    expect(restored.apply({ op: "register", gid: 2, incarnation: "x", configNum: 0 })).toEqual({ ok: true })
  })
})
