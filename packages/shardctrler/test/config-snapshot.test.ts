/** Proves that a snapshot restores the identical history, through msgpack too, and that a corrupt one is refused. */
import { expect, test } from "bun:test"
import { decode, encode } from "@msgpack/msgpack"
import { type ConfigOp, ConfigStateMachine } from "../src/config/index.ts"

const big = 2 ** 40
const log: ConfigOp[] = [
  { op: "join", groups: { 100: ["10.0.0.1:7100", "10.0.0.2:7100"], [big]: ["10.0.0.9:7200"] } },
  { op: "join", groups: { 101: ["10.0.0.3:7101"] } },
  { op: "move", shard: 3, gid: 101 },
  { op: "leave", gids: [100] },
  { op: "join", groups: { 7: ["h:1"], 8: ["h:2"], 9: ["h:3"] } },
]

const populated = (nShards = 10) => {
  const machine = new ConfigStateMachine(nShards)
  for (const op of log) expect(machine.apply(op).ok).toBe(true)
  return machine
}

test("restore gives the identical history", () => {
  const machine = populated()
  const restored = new ConfigStateMachine(10)
  restored.restore(machine.snapshot())
  expect(restored.configs()).toEqual(machine.configs())
  for (const config of machine.configs()) {
    expect(restored.apply({ op: "query", num: config.num })).toEqual({ ok: true, config })
  }
})

test("a msgpack round trip gives the identical history, byte for byte", () => {
  const machine = populated()
  const bytes = encode(machine.snapshot())
  const restored = ConfigStateMachine.fromSnapshot(decode(bytes))
  expect(restored.nShards).toBe(10)
  expect(restored.configs()).toEqual(machine.configs())
  expect(encode(restored.snapshot())).toEqual(bytes)
})

test("a JSON round trip gives the identical history", () => {
  const machine = populated(4)
  const restored = ConfigStateMachine.fromSnapshot(JSON.parse(JSON.stringify(machine.snapshot())))
  expect(restored.configs()).toEqual(machine.configs())
})

test("a restored machine continues exactly like the original", () => {
  const machine = populated()
  const restored = ConfigStateMachine.fromSnapshot(decode(encode(machine.snapshot())))
  const next: ConfigOp[] = [
    { op: "leave", gids: [8, big] },
    { op: "join", groups: { 200: ["z:1"] } },
  ]
  for (const op of next) expect(restored.apply(op)).toEqual(machine.apply(op))
  expect(restored.configs()).toEqual(machine.configs())
})

test("the snapshot of a fresh machine restores configuration 0", () => {
  const restored = ConfigStateMachine.fromSnapshot(new ConfigStateMachine(16).snapshot())
  expect(restored.configs()).toEqual([{ num: 0, shards: new Array(16).fill(0), groups: {} }])
})

test("later applies do not change an earlier snapshot", () => {
  const machine = populated()
  const snapshot = machine.snapshot()
  const length = snapshot.configs.length
  machine.apply({ op: "join", groups: { 300: ["y:1"] } })
  expect(snapshot.configs.length).toBe(length)
})

test("a corrupt snapshot is refused and the history is left as it was", () => {
  const machine = populated()
  const good = JSON.parse(JSON.stringify(machine.snapshot()))
  type EditableSnapshot = { nShards: number; configs: EditableConfig[] }
  type EditableConfig = { num: number; shards: number[]; groups: Record<string, string[]> }
  const config = (s: EditableSnapshot, num: number): EditableConfig => {
    const found = s.configs[num]
    if (found === undefined) throw new Error(`the fixture has no configuration ${num}`)
    return found
  }
  const corruptions: Array<(s: EditableSnapshot) => unknown> = [
    () => null,
    () => "snapshot",
    (s) => ({ ...s, nShards: 16 }),
    (s) => ({ ...s, configs: [] }),
    (s) => ({ ...s, configs: s.configs.slice(1) }),
    (s) => ({ ...s, configs: [config(s, 0), config(s, 2)] }),
    (s) => {
      config(s, 1).shards.pop()
      return s
    },
    (s) => {
      config(s, 1).shards[0] = 555
      return s
    },
    (s) => {
      config(s, 1).groups["0100"] = ["x:1"]
      return s
    },
    (s) => {
      config(s, 1).groups["100"] = []
      return s
    },
    (s) => {
      config(s, 0).shards[0] = 100
      config(s, 0).groups["100"] = ["x:1"]
      return s
    },
  ]
  for (const corrupt of corruptions) {
    const target = populated()
    const before = target.configs()
    expect(() => target.restore(corrupt(structuredClone(good)))).toThrow(/corrupt shard-controller snapshot/)
    expect(target.configs()).toEqual(before)
  }
  expect(() => ConfigStateMachine.fromSnapshot({ nShards: 0, configs: [] })).toThrow(/corrupt/)
})
