/**
 * Proves that the linearizability checker knows transactions: a txn's compares and the gets and writes
 * of the branch that ran are one atomic step over all its keys, keys touched together are checked
 * together, and on small random histories over three keys it agrees with a plain execution of the
 * definition. Replay with KV_SEED=<n>.
 */
import { describe, expect, test } from "bun:test"
import {
  casApplied,
  casRejected,
  checkLinearizable,
  type KvInput,
  type Operation,
  type TxnCompare,
  type TxnOp,
  txnFailed,
  txnSucceeded,
} from "../src/linearizability/index.ts"

const FILE = "packages/testkit/test/coord.txn.linearizability.test.ts"

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

const op = (clientId: number, input: KvInput, call: number, ret: number, output?: string): Operation =>
  output === undefined ? { clientId, input, call, return: ret } : { clientId, input, call, return: ret, output }

const txn = (
  clientId: number,
  compare: readonly TxnCompare[],
  success: readonly TxnOp[],
  failure: readonly TxnOp[],
  call: number,
  ret: number,
  outcome?: { readonly succeeded: boolean; readonly reads?: readonly string[] },
): Operation => {
  const input: KvInput = { op: "txn", key: compare[0]?.key ?? success[0]?.key ?? "", compare, success, failure }
  if (outcome === undefined) return { clientId, input, call, return: ret }
  return {
    clientId,
    input,
    call,
    return: ret,
    output: outcome.succeeded ? txnSucceeded : txnFailed,
    reads: outcome.reads ?? [],
  }
}

const version = (key: string, value: number): TxnCompare => ({ key, target: "version", cmp: "==", value })
const valueIs = (key: string, value: string): TxnCompare => ({ key, target: "value", cmp: "==", value })
const put = (key: string, value: string): TxnOp => ({ op: "put", key, value })
const get = (key: string): TxnOp => ({ op: "get", key })

/** a = "10", b = "0", each written once (version 1). */
const accounts = [op(0, { op: "put", key: "a", value: "10" }, 0, 1), op(0, { op: "put", key: "b", value: "0" }, 2, 3)]

/** Moves one unit from a to b if neither changed since it read them (version 1), reading both back. */
const transfer = (
  clientId: number,
  to: [string, string],
  call: number,
  ret: number,
  succeeded: boolean,
  reads: string[],
) =>
  txn(
    clientId,
    [version("a", 1), version("b", 1)],
    [put("a", to[0]), put("b", to[1])],
    [get("a"), get("b")],
    call,
    ret,
    {
      succeeded,
      reads,
    },
  )

describe("the checker knows transactions", () => {
  test("two concurrent transfers from the same versions: one succeeds, the other fails and reads the result", () => {
    const history = [
      ...accounts,
      transfer(1, ["9", "1"], 4, 8, true, []),
      transfer(2, ["9", "1"], 5, 9, false, ["9", "1"]),
      op(3, { op: "get", key: "a" }, 10, 11, "9"),
      op(3, { op: "get", key: "b" }, 12, 13, "1"),
    ]
    expect(checkLinearizable(history)).toEqual({ ok: true })
  })

  test("two transactions that both saw the same versions cannot both succeed", () => {
    const history = [...accounts, transfer(1, ["9", "1"], 4, 8, true, []), transfer(2, ["9", "1"], 5, 9, true, [])]
    const verdict = checkLinearizable(history)
    expect(verdict.ok).toBe(false)
    if (!verdict.ok) {
      expect(verdict.key).toBe("a, b")
      expect(verdict.explanation).toContain(
        'txn(if "a".version == 1 and "b".version == 1 then [put("a", "9"), put("b", "1")]',
      )
    }
  })

  test("a success branch that ran though no concurrent write let its compare hold", () => {
    const history = [...accounts, txn(1, [valueIs("a", "11")], [put("b", "5")], [], 4, 5, { succeeded: true })]
    expect(checkLinearizable(history).ok).toBe(false)
    // The same transaction failing is fine, and so is it succeeding after a concurrent put of 11.
    expect(
      checkLinearizable([...accounts, txn(1, [valueIs("a", "11")], [put("b", "5")], [], 4, 5, { succeeded: false })])
        .ok,
    ).toBe(true)
    const concurrent = op(2, { op: "put", key: "a", value: "11" }, 4, 6)
    expect(
      checkLinearizable([
        ...accounts,
        concurrent,
        txn(1, [valueIs("a", "11")], [put("b", "5")], [], 4, 5, { succeeded: true }),
      ]).ok,
    ).toBe(true)
  })

  test("a compare on the value of an absent key never holds, neither == nor !=", () => {
    const notX: TxnCompare = { key: "k", target: "value", cmp: "!=", value: "x" }
    expect(checkLinearizable([txn(1, [notX], [put("k", "y")], [], 0, 1, { succeeded: true })]).ok).toBe(false)
    expect(checkLinearizable([txn(1, [notX], [put("k", "y")], [], 0, 1, { succeeded: false })]).ok).toBe(true)
    // Absent is version 0: the usual create-if-absent.
    expect(checkLinearizable([txn(1, [version("k", 0)], [put("k", "y")], [], 0, 1, { succeeded: true })]).ok).toBe(true)
  })

  test("write skew: each key alone allows an order, both keys together do not", () => {
    // t1 writes b if a is unchanged, t2 writes a if b is unchanged. On a alone t1 then t2 fits; on b alone
    // t2 then t1 fits; together one of them must have seen the other's write and failed.
    const t1 = txn(1, [version("a", 1)], [put("b", "t1")], [], 4, 8, { succeeded: true })
    const t2 = txn(2, [version("b", 1)], [put("a", "t2")], [], 5, 9, { succeeded: true })
    expect(checkLinearizable([...accounts, t1, t2]).ok).toBe(false)
    expect(checkLinearizable([...accounts, t1, { ...t2, output: txnFailed }]).ok).toBe(true)
  })

  test("a transaction's gets see the writes before them in its branch, and nothing from outside it", () => {
    const readBack = (reads: string[]) =>
      txn(1, [], [get("a"), put("a", "x"), get("a"), get("b")], [], 4, 5, { succeeded: true, reads })
    expect(checkLinearizable([...accounts, readBack(["10", "x", "0"])]).ok).toBe(true)
    expect(checkLinearizable([...accounts, readBack(["x", "x", "0"])]).ok).toBe(false)
    expect(checkLinearizable([...accounts, readBack(["10", "10", "0"])]).ok).toBe(false)
    // Atomic: a get concurrent with it sees a before or after the whole transaction, never between.
    const spanning = txn(1, [], [put("a", "x"), put("a", "y")], [], 4, 9, { succeeded: true, reads: [] })
    expect(checkLinearizable([...accounts, spanning, op(2, { op: "get", key: "a" }, 5, 6, "y")]).ok).toBe(true)
    expect(checkLinearizable([...accounts, spanning, op(2, { op: "get", key: "a" }, 5, 6, "x")]).ok).toBe(false)
  })

  test("a transaction of unknown outcome may have run once, or never", () => {
    const maybe = txn(1, [version("a", 1)], [put("a", "9"), put("b", "1")], [], 4, Infinity)
    const read = (key: string, value: string, at: number) => op(2, { op: "get", key }, at, at + 1, value)
    expect(checkLinearizable([...accounts, maybe, read("a", "9", 10), read("b", "1", 12)]).ok).toBe(true)
    expect(checkLinearizable([...accounts, maybe, read("a", "10", 10), read("b", "0", 12)]).ok).toBe(true)
    // Half of it is not an outcome.
    expect(checkLinearizable([...accounts, maybe, read("a", "9", 10), read("b", "0", 12)]).ok).toBe(false)
  })

  test("keys are joined transitively: a txn on a and b, another on b and c, check a, b and c together", () => {
    const history = [
      ...accounts,
      txn(1, [version("a", 1)], [put("b", "x")], [], 4, 8, { succeeded: true }),
      txn(2, [version("b", 1)], [put("c", "y")], [], 5, 9, { succeeded: true }),
      txn(3, [version("c", 0)], [put("a", "z")], [], 5, 9, { succeeded: true }),
    ]
    const verdict = checkLinearizable(history)
    expect(verdict.ok).toBe(false)
    if (!verdict.ok) expect(verdict.key).toBe("a, b, c")
  })

  test("a known transaction reports succeeded or failed and a list of reads", () => {
    const bad = { ...txn(1, [], [put("a", "x")], [], 0, 1, { succeeded: true }), output: "yes" }
    expect(() => checkLinearizable([bad])).toThrow(/succeeded/)
    const noReads: Operation = { clientId: 1, input: bad.input, call: 0, return: 1, output: txnSucceeded }
    expect(() => checkLinearizable([noReads])).toThrow(/reads/)
  })

  test("600 random small histories with transactions over three keys: the checker agrees with the definition", () => {
    console.log(`coord txn linearizability: seed ${seed} (replay: KV_SEED=${seed} bun test ${FILE})`)
    const keys = ["a", "b", "c"]
    const values = ["x", "y", "xy"]
    let accepted = 0
    let rejected = 0
    for (let h = 0; h < 600; h++) {
      const rng = rngFor(h)
      const randomOp = (): TxnOp => {
        const roll = rng.int(5)
        const key = rng.pick(keys)
        return roll < 2 ? get(key) : roll < 4 ? put(key, rng.pick(values)) : { op: "delete", key }
      }
      const randomCompare = (): TxnCompare =>
        rng.next() < 0.5
          ? {
              key: rng.pick(keys),
              target: "version",
              cmp: rng.pick(["==", "!=", "<", ">"] as const),
              value: rng.int(3),
            }
          : { key: rng.pick(keys), target: "value", cmp: rng.pick(["==", "!="] as const), value: rng.pick(values) }
      const history: Operation[] = []
      const count = 1 + rng.int(h % 2 === 0 ? 6 : 9)
      for (let i = 0; i < count; i++) {
        const call = rng.int(10)
        const ret = rng.next() < 0.12 ? Infinity : call + rng.int(6)
        const roll = rng.int(10)
        const key = rng.pick(keys)
        const input: KvInput =
          roll < 3
            ? { op: "get", key }
            : roll < 5
              ? { op: "put", key, value: rng.pick(values) }
              : roll < 6
                ? { op: "append", key, value: rng.pick(["x", "y"]) }
                : roll < 7
                  ? { op: "delete", key }
                  : roll < 8
                    ? { op: "cas", key, expected: rng.pick(values), value: rng.pick(values) }
                    : {
                        op: "txn",
                        key,
                        compare: Array.from({ length: rng.int(3) }, randomCompare),
                        success: Array.from({ length: 1 + rng.int(3) }, randomOp),
                        failure: Array.from({ length: rng.int(3) }, randomOp),
                      }
        history.push(op(i, input, call, ret))
      }
      // Outputs from a random order of the operations, sometimes wrong.
      let store = new Store()
      for (const i of [...history.keys()].sort(() => rng.next() - 0.5)) {
        const o = history[i]!
        const outcome = store.apply(o.input)
        store = outcome.store
        if (!Number.isFinite(o.return)) continue
        const wrong = rng.next() < 0.12
        if (o.input.op === "get") history[i] = { ...o, output: wrong ? rng.pick(["", ...values]) : outcome.output! }
        else if (o.input.op === "cas")
          history[i] = { ...o, output: (outcome.output === casApplied) !== wrong ? casApplied : casRejected }
        else if (o.input.op === "txn") {
          const reads = [...outcome.reads]
          if (wrong && reads.length > 0 && rng.next() < 0.5) reads[rng.int(reads.length)] = rng.pick(["", ...values])
          const flip = wrong && reads.length === outcome.reads.length && reads.every((r, j) => r === outcome.reads[j])
          history[i] = { ...o, output: (outcome.output === txnSucceeded) !== flip ? txnSucceeded : txnFailed, reads }
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
    expect(accepted).toBeGreaterThan(100)
    expect(rejected).toBeGreaterThan(100)
  })
})

/** The store as a plain sequential program: per key a value and a version (0: absent). */
class Store {
  constructor(
    readonly entries: ReadonlyMap<string, { readonly value: string; readonly version: number }> = new Map(),
  ) {}

  read(key: string): string {
    return this.entries.get(key)?.value ?? ""
  }

  write(key: string, value: string): Store {
    const next = new Map(this.entries)
    next.set(key, { value, version: (this.entries.get(key)?.version ?? 0) + 1 })
    return new Store(next)
  }

  remove(key: string): Store {
    const next = new Map(this.entries)
    next.delete(key)
    return new Store(next)
  }

  holds(c: TxnCompare): boolean {
    const entry = this.entries.get(c.key)
    if (c.target === "value") return entry !== undefined && (entry.value === c.value) === (c.cmp === "==")
    const v = entry?.version ?? 0
    return c.cmp === "==" ? v === c.value : c.cmp === "!=" ? v !== c.value : c.cmp === "<" ? v < c.value : v > c.value
  }

  apply(input: KvInput): { store: Store; output?: string; reads: string[] } {
    switch (input.op) {
      case "get":
        return { store: this, output: this.read(input.key), reads: [] }
      case "put":
        return { store: this.write(input.key, input.value), reads: [] }
      case "append":
        return { store: this.write(input.key, this.read(input.key) + input.value), reads: [] }
      case "delete":
        return { store: this.remove(input.key), reads: [] }
      case "cas": {
        const holds = this.entries.has(input.key) && this.read(input.key) === input.expected
        return {
          store: holds ? this.write(input.key, input.value) : this,
          output: holds ? casApplied : casRejected,
          reads: [],
        }
      }
      case "txn": {
        const holds = input.compare.every((c) => this.holds(c))
        let store: Store = this
        const reads: string[] = []
        for (const o of holds ? input.success : input.failure) {
          if (o.op === "get") reads.push(store.read(o.key))
          else store = o.op === "put" ? store.write(o.key, o.value) : store.remove(o.key)
        }
        return { store, output: holds ? txnSucceeded : txnFailed, reads }
      }
    }
  }

  get digest(): string {
    return JSON.stringify([...this.entries].sort())
  }
}

/** The definition, run directly: place any operation nothing unplaced must precede, until every known one is placed. */
const reference = (history: readonly Operation[]): boolean => {
  const known = (o: Operation) => Number.isFinite(o.return)
  const ops = history.filter((o) => o.input.op !== "get" || (known(o) && o.output !== undefined))
  const knownMask = ops.reduce((mask, o, i) => (known(o) ? mask | (1 << i) : mask), 0)
  const failed = new Set<string>()
  const place = (placed: number, store: Store): boolean => {
    if ((placed & knownMask) === knownMask) return true
    const node = `${placed}:${store.digest}`
    if (failed.has(node)) return false
    const unplaced = ops.filter((_, i) => !(placed & (1 << i)))
    const found = ops.some((o, i) => {
      if (placed & (1 << i) || unplaced.some((other) => other.return < o.call)) return false
      const outcome = store.apply(o.input)
      if (known(o) && o.input.op !== "put" && o.input.op !== "append" && o.input.op !== "delete") {
        if (outcome.output !== o.output) return false
        if (o.input.op === "txn" && JSON.stringify(outcome.reads) !== JSON.stringify(o.reads)) return false
      }
      return place(placed | (1 << i), outcome.store)
    })
    if (!found) failed.add(node)
    return found
  }
  return place(0, new Store())
}
