/**
 * Proves that a KvStateMachine gives the same answers as a plain in-memory model, metadata
 * included, over a long random sequence of puts, appends, deletes, conditional writes,
 * transactions, entry reads and listing pages (in byte order, checked against sorted UTF-8 bytes),
 * leases (granted, renewed, revoked, expired by the leader, with keys attached by puts and detached
 * by other writes), with retries of the last command and snapshot/restore at random points.
 * Replay with KV_SEED=<n>.
 */
import { expect, test } from "bun:test"
import { SeededRandom, seedFromEnv } from "@kv/rpc"
import {
  type KvCompare,
  type KvCondition,
  type KvEntry,
  type KvOp,
  type KvResult,
  KvStateMachine,
  type KvTxnOp,
} from "../src/stateMachine/index.ts"

const FILE = "packages/kvraft/test/coord.model.random.test.ts"

const seededRandom = (seed: number) => {
  const random = new SeededRandom(seed)
  return {
    next: () => random.next(),
    int: (n: number) => random.int(n),
    pick: <T>(items: readonly T[]): T => items[random.int(items.length)]!,
  }
}

/** Byte order, from the UTF-8 encoding itself: the oracle for listing order. */
const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b))

/** The specification, written as plainly as possible. */
class Model {
  readonly data = new Map<string, KvEntry>()
  revision = 0
  /** Lease id → renewals and attached keys. */
  readonly leases = new Map<number, { renewals: number; keys: Set<string> }>()
  nextLease = 1

  #detach(key: string) {
    for (const lease of this.leases.values()) lease.keys.delete(key)
  }

  #setLease(key: string, lease: number | undefined) {
    this.#detach(key)
    if (lease !== undefined) this.leases.get(lease)!.keys.add(key)
  }

  #deleteLease(id: number) {
    const keys = [...this.leases.get(id)!.keys].filter((k) => this.data.has(k))
    this.leases.delete(id)
    for (const k of keys) this.data.delete(k)
    if (keys.length > 0) this.revision++
  }

  expire(id: number, renewals: number) {
    if (this.leases.get(id)?.renewals === renewals) this.#deleteLease(id)
  }

  #missingLease(op: KvOp): KvResult | undefined {
    const named: number[] = []
    if ((op.op === "put" || op.op === "casPut") && op.lease !== undefined) named.push(op.lease)
    if (op.op === "txn")
      for (const o of [...op.success, ...op.failure]) if (o.op === "put" && o.lease) named.push(o.lease)
    const missing = named.find((id) => !this.leases.has(id))
    return missing === undefined
      ? undefined
      : {
          ok: false,
          error: "LeaseNotFound",
          message: `lease ${missing} does not exist (revoked, expired or never granted); nothing was written`,
        }
  }

  #holds(key: string, c: KvCondition): boolean {
    const e = this.data.get(key)
    if (c.target === "value") {
      if (e === undefined) return false
      const order = byteOrder(e.value, c.value as string)
      return c.cmp === "==" ? order === 0 : c.cmp === "!=" ? order !== 0 : c.cmp === "<" ? order < 0 : order > 0
    }
    const have = e === undefined ? 0 : e[c.target]
    const want = c.value as number
    return c.cmp === "==" ? have === want : c.cmp === "!=" ? have !== want : c.cmp === "<" ? have < want : have > want
  }

  #write(key: string, value: string, revision: number) {
    const e = this.data.get(key)
    this.data.set(
      key,
      e === undefined
        ? { value, version: 1, modRevision: revision, createRevision: revision }
        : { value, version: e.version + 1, modRevision: revision, createRevision: e.createRevision },
    )
  }

  apply(op: KvOp): KvResult {
    if (op.op === "txn") {
      for (const branch of [op.success, op.failure]) {
        const writes = branch.filter((o) => o.op !== "get").map((o) => o.key)
        const twice = writes.find((key, i) => writes.indexOf(key) !== i)
        if (twice !== undefined) {
          return {
            ok: false,
            error: "InvalidRequest",
            message: `a transaction branch writes ${JSON.stringify(twice)} more than once`,
          }
        }
      }
    }
    const missing = this.#missingLease(op)
    if (missing !== undefined) return missing
    switch (op.op) {
      case "put":
        this.#write(op.key, op.value, ++this.revision)
        this.#setLease(op.key, op.lease)
        return { ok: true }
      case "append":
        this.#write(op.key, (this.data.get(op.key)?.value ?? "") + op.value, ++this.revision)
        return { ok: true }
      case "delete":
        this.#detach(op.key)
        if (this.data.delete(op.key)) this.revision++
        return { ok: true }
      case "casPut":
      case "casDelete": {
        const current = this.data.get(op.key)
        if (!this.#holds(op.key, op.when)) {
          const reply = { kind: "cas", applied: false, revision: this.revision } as const
          return { ok: true, reply: current === undefined ? reply : { ...reply, entry: current } }
        }
        if (op.op === "casPut") {
          this.#write(op.key, op.value, ++this.revision)
          this.#setLease(op.key, op.lease)
        } else {
          this.#detach(op.key)
          if (this.data.delete(op.key)) this.revision++
        }
        return { ok: true, reply: { kind: "cas", applied: true, revision: this.revision } }
      }
      case "txn": {
        const succeeded = op.compare.every((c) => this.#holds(c.key, c))
        let changed = false
        const entries: (KvEntry | null)[] = []
        for (const o of succeeded ? op.success : op.failure) {
          if (o.op === "get") entries.push(this.data.get(o.key) ?? null)
          else {
            entries.push(null)
            if (o.op === "put") {
              this.#write(o.key, o.value, this.revision + 1)
              this.#setLease(o.key, o.lease)
              changed = true
            } else {
              this.#detach(o.key)
              if (this.data.delete(o.key)) changed = true
            }
          }
        }
        if (changed) this.revision++
        return { ok: true, reply: { kind: "txn", succeeded, revision: this.revision, entries } }
      }
      case "leaseGrant": {
        const lease = this.nextLease++
        this.leases.set(lease, { renewals: 0, keys: new Set() })
        return { ok: true, reply: { kind: "lease", lease, ttlMs: op.ttlMs } }
      }
      case "leaseKeepAlive":
      case "leaseRevoke": {
        const lease = this.leases.get(op.lease)
        if (lease === undefined) {
          return {
            ok: false,
            error: "LeaseNotFound",
            message: `lease ${op.lease} does not exist (revoked, expired or never granted); nothing was written`,
          }
        }
        if (op.op === "leaseRevoke") {
          this.#deleteLease(op.lease)
          return { ok: true }
        }
        lease.renewals++
        return { ok: true, reply: { kind: "lease", lease: op.lease, ttlMs: 5_000 } }
      }
    }
  }

  list(prefix: string, after: string | undefined, limit: number, keysOnly: boolean) {
    const keys = [...this.data.keys()]
      .filter((k) => k.startsWith(prefix) && (after === undefined || byteOrder(k, after) > 0))
      .sort(byteOrder)
    const entries = keys.slice(0, limit).map((key) => {
      const { value, ...meta } = this.data.get(key)!
      return keysOnly ? { key, ...meta } : { key, value, ...meta }
    })
    return { entries, more: keys.length > limit, revision: this.revision }
  }
}

// Code units on both sides of the surrogates, so that UTF-16 order and byte order disagree.
const alphabet = ["a", "b", "/", "\uE000", "\uFFFD", "\u{1F600}", "\u{10000}"]

test("random operations give the model's answers, metadata and listing pages included", () => {
  const seed = seedFromEnv()
  console.log(`coord model: seed ${seed} (replay: KV_SEED=${seed} bun test ${FILE})`)
  const rng = seededRandom(seed)
  const randomKey = (): string => {
    let key = ""
    const length = 1 + rng.int(3)
    for (let i = 0; i < length; i++) key += rng.pick(alphabet)
    return key
  }
  const model = new Model()
  let machine = new KvStateMachine()
  const keysSeen: string[] = []
  const someKey = () => (keysSeen.length > 0 && rng.next() < 0.7 ? rng.pick(keysSeen) : randomKey())
  const condition = (key: string): KvCondition => {
    const e = model.data.get(key)
    const target = rng.pick(["version", "modRevision", "createRevision", "value"] as const)
    const cmp = rng.next() < 0.7 ? "==" : rng.pick(["!=", "<", ">"] as const)
    if (target === "value")
      return { target, cmp, value: e !== undefined && rng.next() < 0.6 ? e.value : rng.pick(["x", "y"]) }
    const exact = e === undefined ? 0 : e[target]
    return { target, cmp, value: rng.next() < 0.6 ? exact : Math.max(0, exact + rng.int(3) - 1) }
  }
  /** A lease that exists (mostly), or one that ended or never was. */
  const someLease = (): number => {
    const live = [...model.leases.keys()]
    return live.length > 0 && rng.next() < 0.85 ? rng.pick(live) : 1 + rng.int(model.nextLease + 1)
  }
  const maybeLease = (): { lease?: number } => (rng.next() < 0.3 ? { lease: someLease() } : {})
  const txnOps = (): KvTxnOp[] =>
    Array.from({ length: rng.int(4) }, (): KvTxnOp => {
      const key = someKey()
      const r = rng.next()
      return r < 0.4
        ? { op: "put", key, value: `t${rng.int(100)}`, ...maybeLease() }
        : r < 0.7
          ? { op: "get", key }
          : { op: "delete", key }
    })
  const counts = {
    applied: 0,
    notApplied: 0,
    txnSucceeded: 0,
    txnFailed: 0,
    lists: 0,
    restores: 0,
    retries: 0,
    leaseKeysDeleted: 0,
    expiries: 0,
  }
  let seq = 0
  let last: { seq: number; op: KvOp; result: KvResult } | undefined
  let nowMs = 1_000

  for (let step = 0; step < 20_000; step++) {
    nowMs += 1
    const r = rng.next()
    if (r < 0.1) {
      const key = someKey()
      expect(machine.getEntry(key)).toEqual(model.data.get(key))
      continue
    }
    if (r < 0.2) {
      const prefix = rng.next() < 0.3 ? "" : randomKey().slice(0, 1 + rng.int(2))
      const after = rng.next() < 0.5 ? undefined : randomKey()
      const limit = 1 + rng.int(6)
      const keysOnly = rng.next() < 0.3
      expect(machine.list(prefix, { after, limit, keysOnly })).toEqual(model.list(prefix, after, limit, keysOnly))
      counts.lists++
      continue
    }
    if (r < 0.23) {
      machine = KvStateMachine.restore(machine.snapshot())
      counts.restores++
      continue
    }
    if (r < 0.24) {
      // The leader's expiry, sometimes decided before a renewal it has not seen (then void).
      const lease = someLease()
      const renewals = Math.max(0, (model.leases.get(lease)?.renewals ?? 0) - (rng.next() < 0.3 ? 1 : 0))
      const keysBefore = model.data.size
      model.expire(lease, renewals)
      machine.applyLeader({ kind: "leaseExpire", lease, renewals })
      counts.expiries++
      counts.leaseKeysDeleted += keysBefore - model.data.size
      expect(machine.revision).toBe(model.revision)
      expect(machine.leases.all().map((l) => [l.id, l.renewals, l.keys])).toEqual(
        [...model.leases].map(([id, l]) => [id, l.renewals, [...l.keys].filter((k) => model.data.has(k)).sort()]),
      )
      continue
    }
    if (r < 0.28 && last !== undefined) {
      // A retry of the last command: its first answer, whatever the state is now.
      expect(machine.apply({ clientId: 7, seq: last.seq, ackedBelow: last.seq, nowMs, op: last.op })).toEqual(
        last.result,
      )
      counts.retries++
      continue
    }
    const key = someKey()
    const kind = rng.next()
    let op: KvOp
    if (kind < 0.03) op = { op: "leaseGrant", key: "", ttlMs: 5_000 }
    else if (kind < 0.05) op = { op: "leaseKeepAlive", key: "", lease: someLease() }
    else if (kind < 0.06) op = { op: "leaseRevoke", key: "", lease: someLease() }
    else if (kind < 0.2) op = { op: "put", key, value: `v${rng.int(1000)}`, ...maybeLease() }
    else if (kind < 0.3) op = { op: "append", key, value: `+${rng.int(10)}` }
    else if (kind < 0.4) op = { op: "delete", key }
    else if (kind < 0.65) op = { op: "casPut", key, value: `c${rng.int(1000)}`, when: condition(key), ...maybeLease() }
    else if (kind < 0.75) op = { op: "casDelete", key, when: condition(key) }
    else {
      const compare: KvCompare[] = Array.from({ length: rng.int(3) }, () => {
        const k = someKey()
        return { key: k, ...condition(k) }
      })
      op = { op: "txn", key, compare, success: txnOps(), failure: txnOps() }
    }
    seq++
    const expected = model.apply(op)
    const result = machine.apply({ clientId: 7, seq, ackedBelow: seq, nowMs, op })
    expect(result).toEqual(expected)
    expect(machine.revision).toBe(model.revision)
    last = { seq, op, result }
    if (op.op !== "txn" && op.key !== "") keysSeen.push(op.key)
    if (result.ok && result.reply?.kind === "cas") counts[result.reply.applied ? "applied" : "notApplied"]++
    if (result.ok && result.reply?.kind === "txn") counts[result.reply.succeeded ? "txnSucceeded" : "txnFailed"]++
  }
  expect(machine.size()).toBe(model.data.size)
  console.log(`coord model: ${JSON.stringify(counts)}, ${model.data.size} keys, revision ${model.revision}`)
  // Every kind of answer came up.
  for (const count of Object.values(counts)) expect(count).toBeGreaterThan(20)
}, 60_000)
