/**
 * Proves, over thousands of seeded random join/leave/move/query sequences, that every
 * configuration is balanced after join/leave, moves no more shards than the lower bound,
 * keeps every shard on a live group, and that replicas given the same operations with
 * keys and gid lists in other orders compute byte-identical histories.
 *
 * Replay a failure with the seed it prints: KV_SEED=<n> bun test <this file>
 */
import { describe, expect, test } from "bun:test"
import { decode, encode } from "@msgpack/msgpack"
import {
  type Config,
  type ConfigOp,
  type ConfigResult,
  ConfigStateMachine,
  configGids,
  type Gid,
  rebalance,
} from "../src/config/index.ts"

const sequenceCount = 5_000
const rebalanceCaseCount = 5_000
/** Every sequence's final history also goes through a msgpack snapshot round trip at this rate. */
const restoreEvery = 5
const defaultSeed = 5_840
const baseSeed = process.env.KV_SEED === undefined ? defaultSeed : Number(process.env.KV_SEED)
if (!Number.isSafeInteger(baseSeed) || baseSeed < 0) throw new Error(`KV_SEED must be a non-negative integer`)
const replay = (seed: number) => `replay: KV_SEED=${seed} bun test packages/shardctrler/test/config-properties.test.ts`
console.log(`config properties: base seed ${baseSeed} (${replay(baseSeed)})`)

/** mulberry32: small, fast, and the same on every platform. */
const makeRng = (seed: number) => {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (bound: number): number => Math.floor(next() * bound)
  const pick = <T>(items: readonly T[]): T => {
    const item = items[int(items.length)]
    if (item === undefined) throw new Error("pick from an empty list")
    return item
  }
  const shuffle = <T>(items: readonly T[]): T[] => {
    const out = [...items]
    for (let i = out.length - 1; i > 0; i--) {
      const j = int(i + 1)
      const a = out[i] as T
      out[i] = out[j] as T
      out[j] = a
    }
    return out
  }
  return { next, int, pick, shuffle, chance: (p: number) => next() < p }
}
type Rng = ReturnType<typeof makeRng>

class PropertyViolation extends Error {}
const assert = (condition: boolean, message: () => string): void => {
  if (!condition) throw new PropertyViolation(message())
}

const shardCountsToTry = [1, 3, 10, 16] as const
/**
 * Small gids, plus gids around 2^32 - 1 (the first one that is no longer an array index,
 * so objects keep those keys in insertion order) and the largest safe integer.
 */
const gidPool: readonly Gid[] = [
  ...Array.from({ length: 20 }, (_, i) => i + 1),
  2 ** 32 - 2,
  2 ** 32 - 1,
  2 ** 40,
  Number.MAX_SAFE_INTEGER,
]

const sameList = <T>(a: readonly T[], b: readonly T[] | undefined): boolean =>
  b !== undefined && a.length === b.length && a.every((item, i) => item === b[i])

/** Shards whose group differs between two assignments. */
const movedShards = (before: readonly Gid[], after: readonly Gid[]): number[] =>
  after.flatMap((gid, shard) => (before[shard] !== gid ? [shard] : []))

const countsOf = (shards: readonly Gid[], live: readonly Gid[]): number[] =>
  live.map((gid) => shards.filter((g) => g === gid).length)

/** Every shard on a live gid (all on 0 when none), and max - min <= 1 over the live gids. */
const isBalanced = (shards: readonly Gid[], live: readonly Gid[]): boolean => {
  if (live.length === 0) return shards.every((gid) => gid === 0)
  if (!shards.every((gid) => live.includes(gid))) return false
  const counts = countsOf(shards, live)
  return Math.max(...counts) - Math.min(...counts) <= 1
}

/**
 * The fewest shards any balanced placement on `live` must move from `before`, found by
 * dynamic programming over which groups get the floor(n/g)+1 shares, so it does not
 * share the implementation's greedy ranking.
 */
const lowerBoundMoves = (before: readonly Gid[], live: readonly Gid[]): number => {
  const n = before.length
  if (live.length === 0) return before.filter((gid) => gid !== 0).length
  const share = Math.floor(n / live.length)
  const larger = n % live.length
  let kept: number[] = [0, ...new Array<number>(larger).fill(Number.NEGATIVE_INFINITY)]
  for (const load of countsOf(before, live)) {
    kept = kept.map((_, j) =>
      Math.max(
        (kept[j] ?? Number.NEGATIVE_INFINITY) + Math.min(load, share),
        j > 0 ? (kept[j - 1] ?? Number.NEGATIVE_INFINITY) + Math.min(load, share + 1) : Number.NEGATIVE_INFINITY,
      ),
    )
  }
  return n - (kept[larger] ?? Number.NEGATIVE_INFINITY)
}

/** A random operation, drawn against what the model says the groups are. */
const randomOp = (
  rng: Rng,
  live: ReadonlyMap<Gid, readonly string[]>,
  universe: readonly Gid[],
  nShards: number,
  latestNum: number,
): ConfigOp => {
  const present = [...live.keys()]
  const absent = universe.filter((gid) => !live.has(gid))
  const roll = rng.next()
  if (roll < 0.45 || present.length === 0) {
    const wantExisting = present.length > 0 && (absent.length === 0 || rng.chance(0.1))
    const count = 1 + rng.int(3)
    const gids = new Set<Gid>()
    if (wantExisting) gids.add(rng.pick(present))
    for (let i = 0; i < count && absent.length > 0; i++) gids.add(rng.pick(absent))
    const groups: Record<string, string[]> = {}
    for (const gid of gids) {
      groups[gid] = Array.from({ length: 1 + rng.int(3) }, (_, i) => `g${gid}-${i}:${7000 + i}`)
    }
    return { op: "join", groups }
  }
  if (roll < 0.75) {
    const gids = new Set<Gid>()
    const count = 1 + rng.int(Math.min(3, present.length))
    for (let i = 0; i < count; i++) gids.add(rng.pick(present))
    if (absent.length > 0 && rng.chance(0.1)) gids.add(rng.pick(absent))
    return { op: "leave", gids: [...gids] }
  }
  if (roll < 0.9) {
    const gid = absent.length > 0 && rng.chance(0.05) ? rng.pick(absent) : rng.pick(present)
    return { op: "move", shard: rng.int(nShards), gid }
  }
  return { op: "query", num: rng.int(latestNum + 5) - 1 }
}

/**
 * The same operation as another client (or a replica decoding it) might present it:
 * join keys inserted in another order, leave gids in another order with repeats.
 */
const reordered = (rng: Rng, op: ConfigOp): ConfigOp => {
  switch (op.op) {
    case "join": {
      const groups: Record<string, string[]> = {}
      for (const key of rng.shuffle(Object.keys(op.groups))) groups[key] = [...(op.groups[key] ?? [])]
      return { op: "join", groups }
    }
    case "leave": {
      const repeats = op.gids.filter(() => rng.chance(0.3))
      return { op: "leave", gids: rng.shuffle([...op.gids, ...repeats]) }
    }
    default:
      return op
  }
}

/** Checks one applied operation against the model of the groups, and advances the model. */
const checkStep = (
  op: ConfigOp,
  result: ConfigResult,
  before: Config,
  after: Config,
  history: readonly Config[],
  model: Map<Gid, readonly string[]>,
  nShards: number,
): void => {
  const describe = () => `op ${JSON.stringify(op)} on ${JSON.stringify(before)} gave ${JSON.stringify(result)}`
  const rejected = (error: string) => {
    assert(!result.ok && result.error === error, () => `expected ${error}: ${describe()}`)
    assert(after === before, () => `a rejected op created a configuration: ${describe()}`)
  }
  const created = () => {
    assert(result.ok && result.config === after, () => `expected a new configuration: ${describe()}`)
    assert(after.num === before.num + 1, () => `num did not advance by one: ${describe()}`)
    assert(after.shards.length === nShards, () => `shard count changed: ${describe()}`)
  }

  switch (op.op) {
    case "join": {
      const joining = Object.keys(op.groups).map(Number)
      if (joining.some((gid) => model.has(gid))) {
        rejected("GroupExists")
        return
      }
      created()
      for (const gid of joining) model.set(gid, op.groups[gid] ?? [])
      break
    }
    case "leave": {
      if (op.gids.some((gid) => !model.has(gid))) {
        rejected("UnknownGroup")
        return
      }
      created()
      for (const gid of op.gids) model.delete(gid)
      break
    }
    case "move": {
      if (!model.has(op.gid)) {
        rejected("UnknownGroup")
        return
      }
      created()
      const moved = movedShards(before.shards, after.shards)
      assert(after.shards[op.shard] === op.gid, () => `move did not place the shard: ${describe()}`)
      assert(
        moved.every((shard) => shard === op.shard),
        () => `move changed other shards: ${describe()}`,
      )
      break
    }
    case "query": {
      assert(after === before, () => `query created a configuration: ${describe()}`)
      const expected = op.num === -1 || op.num >= history.length ? before : history[op.num]
      assert(result.ok && result.config === expected, () => `query returned the wrong configuration: ${describe()}`)
      return
    }
  }

  const live = [...model.keys()].sort((a, b) => a - b)
  assert(sameList(configGids(after), live), () => `groups differ from the model: ${describe()}`)
  for (const gid of live) {
    assert(
      sameList(model.get(gid) ?? [], after.groups[String(gid)]),
      () => `servers of gid ${gid} differ from the model: ${describe()}`,
    )
  }
  assert(
    after.shards.every((gid) => (live.length === 0 ? gid === 0 : model.has(gid))),
    () => `a shard is not on a live group: ${describe()}`,
  )
  if (op.op === "move") return

  assert(isBalanced(after.shards, live), () => `unbalanced after ${op.op}: ${describe()}`)
  const moved = movedShards(before.shards, after.shards)
  const bound = lowerBoundMoves(before.shards, live)
  assert(moved.length === bound, () => `moved ${moved.length} shards, the fewest possible is ${bound}: ${describe()}`)

  // From a balanced start, a join only feeds the new groups and a leave only
  // redistributes the leaving groups' shards.
  const liveBefore = configGids(before)
  if (isBalanced(before.shards, liveBefore)) {
    if (op.op === "join") {
      const joining = Object.keys(op.groups).map(Number)
      assert(
        moved.every((shard) => joining.includes(after.shards[shard] ?? 0)),
        () => `a join moved a shard to an existing group: ${describe()}`,
      )
    } else if (op.op === "leave") {
      assert(
        moved.every((shard) => op.gids.includes(before.shards[shard] ?? 0)),
        () => `a leave moved a shard of a staying group: ${describe()}`,
      )
    }
  }
}

/** Same outcome: the same error and message, or a success at the same configuration number. */
const sameVerdict = (a: ConfigResult, b: ConfigResult): boolean =>
  a.ok && b.ok ? a.config?.num === b.config?.num : !a.ok && !b.ok && a.error === b.error && a.message === b.message

const runSequence = (seed: number): number => {
  const rng = makeRng(seed)
  const nShards = rng.pick(shardCountsToTry)
  const universe = rng.shuffle(gidPool).slice(0, 4 + rng.int(gidPool.length - 3))
  const opCount = 10 + rng.int(31)
  const machine = new ConfigStateMachine(nShards)
  const twin = new ConfigStateMachine(nShards)
  const model = new Map<Gid, readonly string[]>()
  const trace: ConfigOp[] = []
  try {
    for (let i = 0; i < opCount; i++) {
      const before = machine.latest()
      const op = randomOp(rng, model, universe, nShards, before.num)
      trace.push(op)
      const history = machine.configs()
      const result = machine.apply(op)
      checkStep(op, result, before, machine.latest(), history, model, nShards)
      // Whole histories are compared byte for byte at the end; per step, the verdicts.
      const twinResult = twin.apply(reordered(rng, op))
      assert(
        sameVerdict(twinResult, result),
        () => `reordered op ${JSON.stringify(op)} gave ${JSON.stringify(twinResult)}, not ${JSON.stringify(result)}`,
      )
    }
    const bytes = encode(machine.snapshot())
    assert(
      Buffer.from(encode(twin.snapshot())).equals(Buffer.from(bytes)),
      () => "replicas given reordered ops encode different histories",
    )
    if (seed % restoreEvery === 0) {
      const restored = ConfigStateMachine.fromSnapshot(decode(bytes))
      assert(
        Buffer.from(encode(restored.snapshot())).equals(Buffer.from(bytes)),
        () => "a restored snapshot encodes differently",
      )
    }
    return opCount
  } catch (error) {
    if (!(error instanceof PropertyViolation)) throw error
    throw new Error(`${error.message}\n  nShards ${nShards}, ops so far: ${JSON.stringify(trace)}\n  ${replay(seed)}`)
  }
}

describe("configuration state machine properties", () => {
  test(`${sequenceCount} random join/leave/move/query sequences: balanced, minimal, live, deterministic`, () => {
    let ops = 0
    for (let i = 0; i < sequenceCount; i++) ops += runSequence((baseSeed + i) >>> 0)
    expect(ops).toBeGreaterThanOrEqual(sequenceCount * 10)
  }, 60_000)
})

describe("rebalance properties", () => {
  test(`${rebalanceCaseCount} random assignments: balanced, at the lower bound of moves, order-independent`, () => {
    let moreGroupsThanShards = 0
    for (let i = 0; i < rebalanceCaseCount; i++) {
      const seed = (baseSeed + i) >>> 0
      // Its own stream, so these cases differ from the sequences that share the seed.
      const rng = makeRng(seed ^ 0x5bd1e995)
      const nShards = rng.pick(shardCountsToTry)
      const universe = rng.shuffle(gidPool).slice(0, 1 + rng.int(gidPool.length))
      // Any previous placement: unassigned shards, departed groups, pinned pile-ups.
      const before = Array.from({ length: nShards }, () => (rng.chance(0.15) ? 0 : rng.pick(universe)))
      const live = universe.filter(() => rng.chance(0.6))
      const sorted = [...live].sort((a, b) => a - b)
      if (live.length > nShards) moreGroupsThanShards++
      const after = rebalance(before, live)
      const describe = () =>
        `rebalance(${JSON.stringify(before)}, ${JSON.stringify(live)}) = ${JSON.stringify(after)}; ${replay(seed)}`
      assert(after.length === nShards, describe)
      assert(isBalanced(after, sorted), () => `unbalanced: ${describe()}`)
      const moved = movedShards(before, after).length
      const bound = lowerBoundMoves(before, sorted)
      assert(moved === bound, () => `moved ${moved}, lower bound ${bound}: ${describe()}`)
      const again = rebalance(before, rng.shuffle([...live, ...live.filter(() => rng.chance(0.3))]))
      assert(JSON.stringify(again) === JSON.stringify(after), () => `order-dependent: ${describe()}`)
    }
    expect(moreGroupsThanShards).toBeGreaterThan(0)
  }, 60_000)
})
