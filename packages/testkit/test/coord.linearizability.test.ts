/**
 * Proves that the linearizability checker knows compare-and-swap: on small random histories of gets,
 * puts, appends, deletes and cas (applied, rejected or of unknown outcome) it agrees with a plain
 * execution of the definition, and it catches the classic CAS failures (two winners, a lost update).
 * Replay with KV_SEED=<n>.
 */
import { describe, expect, test } from "bun:test"
import {
  casApplied,
  casRejected,
  checkLinearizable,
  type KvInput,
  type Operation,
} from "../src/linearizability/index.ts"

const FILE = "packages/testkit/test/coord.linearizability.test.ts"

const seed = (() => {
  const text = process.env.KV_SEED
  if (text !== undefined && /^\d+$/.test(text)) return Number(text) >>> 0
  return (Math.random() * 2 ** 32) >>> 0
})()

const rngFor = (n: number) => {
  let state = (seed ^ Math.imul(n + 1, 0x27d4eb2d)) >>> 0
  const next = () => {
    state = (state + 0x9e3779b9) | 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32
  }
  const int = (k: number) => Math.floor(next() * k)
  return { next, int, pick: <T>(items: readonly T[]): T => items[int(items.length)]! }
}

const known = (o: Operation) => Number.isFinite(o.return)

/** The definition, run directly: place any operation nothing unplaced must precede, until every known one is placed. */
const reference = (history: readonly Operation[]): boolean => {
  const ops = history.filter((o) => o.input.op !== "get" || (known(o) && o.output !== undefined))
  const knownMask = ops.reduce((mask, o, i) => (known(o) ? mask | (1 << i) : mask), 0)
  const failed = new Set<string>()
  const place = (placed: number, value: string): boolean => {
    if ((placed & knownMask) === knownMask) return true
    const node = `${placed}:${value}`
    if (failed.has(node)) return false
    const unplaced = ops.filter((_, i) => !(placed & (1 << i)))
    const found = ops.some((op, i) => {
      if (placed & (1 << i) || unplaced.some((other) => other.return < op.call)) return false
      const input = op.input
      const next = placed | (1 << i)
      switch (input.op) {
        case "get":
          return op.output === value && place(next, value)
        case "put":
          return place(next, input.value)
        case "append":
          return place(next, value + input.value)
        case "delete":
          return place(next, "")
        case "cas": {
          const holds = value === input.expected
          if (known(op) && (op.output === casApplied) !== holds) return false
          return place(next, holds ? input.value : value)
        }
      }
      return false
    })
    if (!found) failed.add(node)
    return found
  }
  return place(0, "")
}

const op = (clientId: number, input: KvInput, call: number, ret: number, output?: string): Operation =>
  output === undefined ? { clientId, input, call, return: ret } : { clientId, input, call, return: ret, output }

const cas = (expected: string, value: string): KvInput => ({ op: "cas", key: "k", expected, value })

describe("the checker knows compare-and-swap", () => {
  test("two CAS from the same value cannot both win", () => {
    const history = [
      op(0, { op: "put", key: "k", value: "v0" }, 0, 1),
      op(1, cas("v0", "v1"), 2, 5, casApplied),
      op(2, cas("v0", "v2"), 3, 6, casApplied),
    ]
    expect(checkLinearizable(history).ok).toBe(false)
    const explanation = checkLinearizable(history)
    if (!explanation.ok) expect(explanation.explanation).toContain('cas("k", if "v0" then "v1") -> applied')
    // One winner, one loser: fine in either order.
    expect(checkLinearizable([history[0]!, history[1]!, { ...history[2]!, output: casRejected }]).ok).toBe(true)
  })

  test("a lost update: a CAS applied, yet a later get reads the value it replaced", () => {
    const history = [
      op(0, { op: "put", key: "k", value: "v0" }, 0, 1),
      op(1, cas("v0", "v1"), 2, 3, casApplied),
      op(2, { op: "get", key: "k" }, 4, 5, "v0"),
    ]
    expect(checkLinearizable(history).ok).toBe(false)
  })

  test("a CAS rejected when nothing else could have changed the value", () => {
    const history = [op(0, { op: "put", key: "k", value: "v0" }, 0, 1), op(1, cas("v0", "v1"), 2, 3, casRejected)]
    expect(checkLinearizable(history).ok).toBe(false)
  })

  test("a CAS of unknown outcome may have applied (a get sees it) or not", () => {
    const base = [op(0, { op: "put", key: "k", value: "v0" }, 0, 1), op(1, cas("v0", "v1"), 2, Infinity)]
    expect(checkLinearizable([...base, op(2, { op: "get", key: "k" }, 4, 5, "v1")]).ok).toBe(true)
    expect(checkLinearizable([...base, op(2, { op: "get", key: "k" }, 4, 5, "v0")]).ok).toBe(true)
    // Applied once at most: v1 seen, then v0 put back, then v1 again is impossible.
    const twice = [
      ...base,
      op(2, { op: "get", key: "k" }, 4, 5, "v1"),
      op(2, { op: "put", key: "k", value: "v0" }, 6, 7),
      op(2, { op: "get", key: "k" }, 8, 9, "v1"),
    ]
    expect(checkLinearizable(twice).ok).toBe(false)
  })

  test("a CAS must expect a value, and report applied or rejected", () => {
    expect(() => checkLinearizable([op(0, cas("", "x"), 0, 1, casApplied)])).toThrow(/non-empty/)
    expect(() => checkLinearizable([op(0, cas("a", "x"), 0, 1, "yes")])).toThrow(/applied/)
  })

  test("800 random small histories with CAS: the checker agrees with the definition", () => {
    console.log(`coord linearizability: seed ${seed} (replay: KV_SEED=${seed} bun test ${FILE})`)
    const values = ["a", "b", "ab", "x"]
    let accepted = 0
    let rejected = 0
    for (let h = 0; h < 800; h++) {
      const rng = rngFor(h)
      const history: Operation[] = []
      const count = 1 + rng.int(h % 2 === 0 ? 7 : 11)
      for (let i = 0; i < count; i++) {
        const call = rng.int(10)
        const ret = rng.next() < 0.12 ? Infinity : call + rng.int(6)
        const roll = rng.int(12)
        const input: KvInput =
          roll < 4
            ? { op: "get", key: "k" }
            : roll < 6
              ? { op: "put", key: "k", value: rng.pick(values) }
              : roll < 7
                ? { op: "append", key: "k", value: rng.pick(["a", "b"]) }
                : roll < 8
                  ? { op: "delete", key: "k" }
                  : cas(rng.pick(values), rng.pick(values))
        history.push(op(i, input, call, ret))
      }
      // Outputs from a random order of the operations, or sometimes anything.
      let value = ""
      for (const i of [...history.keys()].sort(() => rng.next() - 0.5)) {
        const o = history[i]!
        const input = o.input
        if (input.op === "get") history[i] = { ...o, output: rng.next() < 0.8 ? value : rng.pick(["", ...values]) }
        else if (input.op === "put") value = input.value
        else if (input.op === "append") value += input.value
        else if (input.op === "delete") value = ""
        else if (input.op === "cas") {
          const holds = value === input.expected
          if (holds) value = input.value
          if (known(o)) history[i] = { ...o, output: holds !== rng.next() < 0.15 ? casApplied : casRejected }
        }
      }
      const expected = reference(history)
      const verdict = checkLinearizable(history)
      if (verdict.ok !== expected) {
        throw new Error(
          `history ${h}: checker ${verdict.ok}, definition ${expected} (KV_SEED=${seed})\n` +
            history.map((o, i) => `#${i} ${JSON.stringify(o)}`).join("\n"),
        )
      }
      if (expected) accepted++
      else rejected++
    }
    expect(accepted).toBeGreaterThan(150)
    expect(rejected).toBeGreaterThan(150)
  })
})
