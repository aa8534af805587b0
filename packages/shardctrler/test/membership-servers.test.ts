/**
 * Proves that the `servers` admin operation replaces a group's server list in a new configuration
 * that moves no shard, refuses unknown, retired and malformed gids and lists with no new
 * configuration, creates none when the list is unchanged, survives snapshots and the command
 * codec, and is applied once however often a client's command is retried.
 */
import { describe, expect, test } from "bun:test"
import { type ConfigOp, type ConfigResult, ConfigStateMachine } from "../src/config/index.ts"
import { ControllerStateMachine, decodeControllerCommand, encodeControllerCommand } from "../src/server/index.ts"

const withGroups = () => {
  const m = new ConfigStateMachine(10)
  m.apply({ op: "join", groups: { 100: ["g100-1", "g100-2", "g100-3"], 101: ["g101-1", "g101-2", "g101-3"] } })
  m.apply({ op: "move", shard: 0, gid: 101 })
  return m
}

const refused = (m: ConfigStateMachine, op: ConfigOp, error: string): string => {
  const before = m.configs()
  const result: ConfigResult = m.apply(op)
  expect(result).toMatchObject({ ok: false, error })
  expect(m.configs()).toEqual(before)
  return (result as { message: string }).message
}

describe("servers: a group's new member list", () => {
  test("makes a new configuration with the group's new servers and every shard where it was", () => {
    const m = withGroups()
    const before = m.latest()
    const result = m.apply({ op: "servers", gid: 100, servers: ["g100-1", "g100-2", "g100-4"] })
    expect(result.ok).toBe(true)
    const after = m.latest()
    expect(result).toEqual({ ok: true, config: after })
    expect(after.num).toBe(before.num + 1)
    expect(after.shards).toEqual(before.shards)
    expect(after.groups).toEqual({ ...before.groups, 100: ["g100-1", "g100-2", "g100-4"] })
    // The history keeps the old list: a group still at the earlier configuration reads it there.
    expect(m.query(before.num).groups["100"]).toEqual(["g100-1", "g100-2", "g100-3"])
  })

  test("keeps the order given, and a list that is already the group's makes no configuration", () => {
    const m = withGroups()
    m.apply({ op: "servers", gid: 101, servers: ["g101-5", "g101-1", "g101-2", "g101-3"] })
    const latest = m.latest()
    expect(latest.groups["101"]).toEqual(["g101-5", "g101-1", "g101-2", "g101-3"])
    expect(m.apply({ op: "servers", gid: 101, servers: ["g101-5", "g101-1", "g101-2", "g101-3"] })).toEqual({
      ok: true,
      config: latest,
    })
    expect(m.latest().num).toBe(latest.num)
  })

  test("a later join or leave rebalances with the new list in place", () => {
    const m = withGroups()
    m.apply({ op: "servers", gid: 100, servers: ["g100-9"] })
    m.apply({ op: "join", groups: { 102: ["g102-1"] } })
    expect(m.latest().groups["100"]).toEqual(["g100-9"])
    m.apply({ op: "leave", gids: [101] })
    expect(m.latest().groups).toEqual({ 100: ["g100-9"], 102: ["g102-1"] })
  })

  test("refuses a gid never joined, and a retired one", () => {
    const m = withGroups()
    expect(refused(m, { op: "servers", gid: 102, servers: ["x"] }, "UnknownGroup")).toContain("gid 102")
    // Gid 100 registers, then its whole group is lost while it holds shards: the gid is retired.
    m.apply({ op: "register", gid: 100, incarnation: "a", configNum: m.latest().num })
    expect(m.apply({ op: "succeed", gid: 100, incarnation: "b" })).toMatchObject({ error: "GidRetired" })
    refused(m, { op: "servers", gid: 100, servers: ["g100-1"] }, "GidRetired")
  })

  test("refuses malformed gids and lists", () => {
    const m = withGroups()
    const untyped = (op: unknown) => op as ConfigOp
    refused(m, { op: "servers", gid: 0, servers: ["x"] }, "BadGid")
    refused(m, { op: "servers", gid: 1.5, servers: ["x"] }, "BadGid")
    refused(m, untyped({ op: "servers", gid: "100", servers: ["x"] }), "BadGid")
    expect(refused(m, { op: "servers", gid: 100, servers: [] }, "BadRequest")).toContain("no servers")
    refused(m, { op: "servers", gid: 100, servers: [""] }, "BadRequest")
    refused(m, untyped({ op: "servers", gid: 100, servers: "g100-1" }), "BadRequest")
    refused(m, untyped({ op: "servers", gid: 100, servers: ["g100-1", 7] }), "BadRequest")
  })

  test("the new list survives a snapshot", () => {
    const m = withGroups()
    m.apply({ op: "servers", gid: 100, servers: ["g100-4", "g100-5"] })
    const restored = ConfigStateMachine.fromSnapshot(structuredClone(m.snapshot()))
    expect(restored.configs()).toEqual(m.configs())
    expect(restored.latest().groups["100"]).toEqual(["g100-4", "g100-5"])
  })
})

describe("servers of a group that left", () => {
  // A group that left may still be pulling shards of a configuration it was in, and replace
  // members meanwhile: the groups it migrates with must learn its new members from somewhere.
  test("are kept beside the configurations: no new configuration, and serversOf answers them", () => {
    const m = withGroups()
    m.apply({ op: "leave", gids: [101] })
    const before = m.configs()
    expect(m.serversOf(101)).toEqual(["g101-1", "g101-2", "g101-3"])
    expect(m.apply({ op: "servers", gid: 101, servers: ["g101-2", "g101-3", "g101-4"] })).toEqual({
      ok: true,
      config: m.latest(),
    })
    expect(m.configs()).toEqual(before)
    expect(m.serversOf(101)).toEqual(["g101-2", "g101-3", "g101-4"])
    expect(m.serversOf(100)).toEqual(["g100-1", "g100-2", "g100-3"])
    expect(m.serversOf(7)).toEqual([])
  })

  test("survive a snapshot, and a join of the gid replaces them", () => {
    const m = withGroups()
    m.apply({ op: "leave", gids: [101] })
    m.apply({ op: "servers", gid: 101, servers: ["g101-4"] })
    const restored = ConfigStateMachine.fromSnapshot(structuredClone(m.snapshot()))
    expect(restored.serversOf(101)).toEqual(["g101-4"])
    restored.apply({ op: "join", groups: { 101: ["g101-7"] } })
    expect(restored.serversOf(101)).toEqual(["g101-7"])
    restored.apply({ op: "leave", gids: [101] })
    expect(restored.serversOf(101)).toEqual(["g101-7"])
  })

  test("a snapshot from before departed lists existed still loads", () => {
    const m = withGroups()
    m.apply({ op: "leave", gids: [101] })
    const { departedServers: _dropped, ...older } = m.snapshot()
    const restored = ConfigStateMachine.fromSnapshot(structuredClone(older))
    expect(restored.serversOf(101)).toEqual(["g101-1", "g101-2", "g101-3"])
  })
})

describe("servers through the controller's log", () => {
  const joinCommand = {
    clientId: 7,
    seq: 1,
    ackedBelow: 1,
    nowMs: 1_000,
    op: { op: "join", groups: { 100: ["g100-1", "g100-2", "g100-3"] } },
  } as const
  const serversCommand = {
    clientId: 7,
    seq: 2,
    ackedBelow: 2,
    nowMs: 2_000,
    op: { op: "servers", gid: 100, servers: ["g100-1", "g100-2", "g100-4"] },
  } as const

  test("the command codec carries it whole", () => {
    expect(decodeControllerCommand(encodeControllerCommand(serversCommand))).toEqual({
      ...serversCommand,
      op: { ...serversCommand.op, servers: [...serversCommand.op.servers] },
    })
  })

  test("a retried command is applied once, even after the list changed again in between", () => {
    const m = new ControllerStateMachine(10)
    expect(m.apply(encodeControllerCommand(joinCommand))).toEqual({ ok: true })
    expect(m.apply(encodeControllerCommand(serversCommand))).toEqual({ ok: true })
    const num = m.latest().num
    // Another client (the group's next leader) sets a newer list.
    m.apply(
      encodeControllerCommand({
        clientId: 8,
        seq: 1,
        ackedBelow: 1,
        nowMs: 3_000,
        op: { op: "servers", gid: 100, servers: ["g100-1", "g100-4", "g100-5"] },
      }),
    )
    // The first client's duplicate arrives late: answered from its session, the newer list stays.
    expect(m.apply(encodeControllerCommand({ ...serversCommand, nowMs: 4_000 }))).toEqual({ ok: true })
    expect(m.latest().num).toBe(num + 1)
    expect(m.latest().groups["100"]).toEqual(["g100-1", "g100-4", "g100-5"])
  })

  test("a refusal is kept for retries too, and survives the state machine's snapshot", () => {
    const m = new ControllerStateMachine(10)
    const unknown = { ...serversCommand, seq: 1, ackedBelow: 1, op: { ...serversCommand.op, gid: 101 } }
    expect(m.apply(encodeControllerCommand(unknown))).toMatchObject({ ok: false, error: "UnknownGroup" })
    const restored = new ControllerStateMachine(10)
    restored.restore(m.snapshot())
    // The gid joins meanwhile; the retried refusal is still a refusal and makes no configuration.
    restored.apply(encodeControllerCommand({ ...joinCommand, clientId: 9, op: { op: "join", groups: { 101: ["x"] } } }))
    const num = restored.latest().num
    expect(restored.apply(encodeControllerCommand(unknown))).toMatchObject({ ok: false, error: "UnknownGroup" })
    expect(restored.latest().num).toBe(num)
  })
})
