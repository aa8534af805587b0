import type { RpcNodeShape } from "@kv/rpc"
import { type Rng, TraceDigest } from "@kv/sim"
import { Effect, Exit } from "effect"
import { checkLinearizable } from "./linearizability/checkLinearizable.ts"
import { HistoryRecorder } from "./linearizability/historyRecorder.ts"
import {
  casApplied,
  casRejected,
  type TxnCompare,
  type TxnOp,
  txnFailed,
  txnSucceeded,
} from "./linearizability/operation.ts"

/** What a swarm's clerk needs of a client: the kvraft and the sharded clerk both fit. */
export interface SwarmClient {
  append(key: string, value: string): Effect.Effect<void, unknown>
  get(key: string): Effect.Effect<string, unknown>
}

/** A swarm client that also replaces values (the large-value writer). */
export interface SwarmPutClient extends SwarmClient {
  put(key: string, value: string): Effect.Effect<void, unknown>
}

/** A swarm client that also has compare-and-swap on the value (kvraft's and shardkv's `putIf`). */
export interface SwarmCasClient extends SwarmClient {
  putIf(
    key: string,
    value: string,
    condition: { readonly ifValue: string },
  ): Effect.Effect<{ readonly applied: boolean }, unknown>
  put(key: string, value: string): Effect.Effect<void, unknown>
}

/** A key's entry as the stores' transactions return it. */
export interface SwarmEntry {
  readonly value: string
  readonly version: number
  readonly modRevision: number
}

/** A compare as the stores take it: the checker's, or one on the key's mod revision. */
export type SwarmCompare =
  | TxnCompare
  | { readonly key: string; readonly target: "modRevision"; readonly cmp: "=="; readonly value: number }

/** A swarm client that also runs transactions (kvraft's and shardkv's `txn`). */
export interface SwarmTxnClient extends SwarmClient {
  txn(request: {
    readonly compare: readonly SwarmCompare[]
    readonly success: readonly TxnOp[]
    readonly failure?: readonly TxnOp[]
  }): Effect.Effect<{ readonly succeeded: boolean; readonly entries: readonly (SwarmEntry | undefined)[] }, unknown>
}

/** See SwarmLedger.coordinationCounts. */
export interface CoordinationCounts {
  readonly casApplied: number
  readonly casRejected: number
  readonly txnSucceeded: number
  readonly txnFailed: number
}

/** Adds `b` into `a`, for totals over a run's seeds. */
export const addCoordinationCounts = (a: CoordinationCounts, b: CoordinationCounts): CoordinationCounts => ({
  casApplied: a.casApplied + b.casApplied,
  casRejected: a.casRejected + b.casRejected,
  txnSucceeded: a.txnSucceeded + b.txnSucceeded,
  txnFailed: a.txnFailed + b.txnFailed,
})

/** The balances that `transferClerk`s move between their two counters: the counters always sum to this. */
export const transferTotal = 100

/**
 * `rpc` for a swarm's clerk, calling `onExpired` on every reply that says the client's session
 * expired. A swarm's clerks are never idle for a session's lifetime, so such a reply means some
 * replica's clock expired an active session.
 */
export const watchExpiredSessions = (rpc: RpcNodeShape, onExpired: (method: string) => void): RpcNodeShape => ({
  ...rpc,
  call: (to, method, request, options) =>
    rpc.call(to, method, request, options).pipe(
      Effect.tap((reply) =>
        Effect.sync(() => {
          if (typeof reply === "object" && reply !== null && "error" in reply && reply.error === "SessionExpired") {
            onExpired(method.name)
          }
        }),
      ),
    ),
  // A sharded clerk asks each group through a view named for it: watched too.
  scoped: (scope) => watchExpiredSessions(rpc.scoped(scope), onExpired),
})

/** What one seed of a swarm found. */
export interface SwarmSeedResult {
  readonly ok: boolean
  readonly problem?: string
  readonly operations: number
  readonly virtualMs: number
  /** A digest of the run (e.g. the ledger's history and the virtual end time): equal for equal runs. */
  readonly digest?: string
}

/**
 * The clerks' side of a swarm run: appends of unique tokens and reads, recorded for the checks at
 * the end (linearizability; every acknowledged append present once, none twice).
 */
export class SwarmLedger {
  readonly history = new HistoryRecorder()
  private readonly acknowledged = new Map<string, Set<string>>()

  constructor(readonly keys: readonly string[]) {
    for (const key of keys) this.acknowledged.set(key, new Set())
  }

  /** Appends `token` to `key` as client `clientId`, recording it; fails as the append does. */
  append(clientId: number, kv: SwarmClient, key: string, token: string): Effect.Effect<void, unknown> {
    return Effect.suspend(() => {
      const call = this.history.begin(clientId, { op: "append", key, value: token })
      return kv.append(key, token).pipe(
        Effect.onExit((exit) =>
          Effect.sync(() => {
            if (Exit.isFailure(exit)) return this.history.unknown(call)
            this.history.end(call)
            this.acknowledged.get(key)?.add(token)
          }),
        ),
      )
    })
  }

  /** Puts `value` at `key` as client `clientId`, recording it (checked by linearizability only). */
  put(clientId: number, kv: SwarmPutClient, key: string, value: string): Effect.Effect<void, unknown> {
    return Effect.suspend(() => {
      const call = this.history.begin(clientId, { op: "put", key, value })
      return kv
        .put(key, value)
        .pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => (Exit.isFailure(exit) ? this.history.unknown(call) : this.history.end(call))),
          ),
        )
    })
  }

  /**
   * Replaces `expected` at `key` by `value` if it is still there, as client `clientId`, recording
   * the cas with its outcome (checked by linearizability only).
   */
  cas(
    clientId: number,
    kv: SwarmCasClient,
    key: string,
    expected: string,
    value: string,
  ): Effect.Effect<boolean, unknown> {
    return Effect.suspend(() => {
      const call = this.history.begin(clientId, { op: "cas", key, expected, value })
      return kv.putIf(key, value, { ifValue: expected }).pipe(
        Effect.map((result) => result.applied),
        Effect.onExit((exit) =>
          Effect.sync(() =>
            Exit.isSuccess(exit)
              ? this.history.end(call, exit.value ? casApplied : casRejected)
              : this.history.unknown(call),
          ),
        ),
      )
    })
  }

  /**
   * Clerk `n`'s optimistic updates of `key` while `until()`: read the value, then replace it by a
   * fresh token only if it is still the one read (a put when the key is empty). Clerks racing on
   * one key make concurrent CAS histories, some applied and some rejected.
   */
  casClerk(
    n: number,
    kv: SwarmCasClient,
    key: string,
    random: Rng,
    until: () => boolean,
    maxThinkMs = 80,
  ): Effect.Effect<void> {
    const ledger = this
    return Effect.gen(function* () {
      let count = 0
      while (until()) {
        yield* Effect.sleep(1 + random.nextInt(maxThinkMs))
        const seen = yield* Effect.option(ledger.read(n, kv, key))
        if (seen._tag === "None") continue
        const token = `cas${n}.${count++}`
        if (seen.value === "") yield* Effect.ignore(ledger.put(n, kv, key, token))
        else yield* Effect.ignore(ledger.cas(n, kv, key, seen.value, token))
      }
    })
  }

  /**
   * Runs a transaction as client `clientId`, recording it with `recorded` as its compares (the
   * checker's equivalent of `request.compare`, see transferClerk) and the values its gets read.
   */
  txn(
    clientId: number,
    kv: SwarmTxnClient,
    request: {
      readonly compare: readonly SwarmCompare[]
      readonly success: readonly TxnOp[]
      readonly failure: readonly TxnOp[]
    },
    recorded: readonly TxnCompare[],
  ): Effect.Effect<{ readonly succeeded: boolean; readonly entries: readonly (SwarmEntry | undefined)[] }, unknown> {
    return Effect.suspend(() => {
      const { success, failure } = request
      const key = recorded[0]?.key ?? success[0]?.key ?? failure[0]?.key ?? ""
      const call = this.history.begin(clientId, { op: "txn", key, compare: recorded, success, failure })
      return kv.txn(request).pipe(
        Effect.onExit((exit) =>
          Effect.sync(() => {
            if (Exit.isFailure(exit)) return this.history.unknown(call)
            const { succeeded, entries } = exit.value
            const branch = succeeded ? success : failure
            const reads = branch.flatMap((o, i) => (o.op === "get" ? [entries[i]?.value ?? ""] : []))
            this.history.end(call, succeeded ? txnSucceeded : txnFailed, reads)
          }),
        ),
      )
    })
  }

  /**
   * Clerk `n`'s transfers between the counters `keys` while `until()`: read both in one transaction,
   * then move a random amount from one to the other in a transaction that succeeds only if neither
   * changed since (on a failure it reads both back). The first clerk to find them absent creates them
   * (`transferTotal` and 0), if both are still absent. Now and then a clerk writes one counter alone
   * again, unchanged but for its token. A counter holds `balance:token`, with a token
   * never written before, so that "its mod revision is still the one read" is exactly "its value is
   * still the one read": the store is asked the former, the checker the latter. Half the transfers
   * compare versions instead, which the checker models directly.
   */
  transferClerk(
    n: number,
    kv: SwarmTxnClient,
    keys: readonly [string, string],
    random: Rng,
    until: () => boolean,
    maxThinkMs = 200,
  ): Effect.Effect<void> {
    const ledger = this
    const [x, y] = keys
    const reads: TxnOp[] = [
      { op: "get", key: x },
      { op: "get", key: y },
    ]
    return Effect.gen(function* () {
      let count = 0
      while (until()) {
        yield* Effect.sleep(1 + random.nextInt(maxThinkMs))
        const seen = yield* Effect.option(ledger.txn(n, kv, { compare: [], success: reads, failure: [] }, []))
        if (seen._tag === "None") continue
        const [ex, ey] = seen.value.entries
        const token = `t${n}.${count++}`
        if (ex === undefined && ey === undefined) {
          const absent: TxnCompare[] = keys.map((key) => ({ key, target: "version", cmp: "==", value: 0 }))
          const success: TxnOp[] = [
            { op: "put", key: x, value: `${transferTotal}:${token}` },
            { op: "put", key: y, value: `0:${token}` },
          ]
          yield* Effect.ignore(ledger.txn(n, kv, { compare: absent, success, failure: reads }, absent))
          continue
        }
        if (ex === undefined || ey === undefined) continue
        if (random.chance(0.2)) {
          // Now and then one counter alone is written again (same balance, new token), so a transfer
          // racing it must see that its other counter changed.
          const [key, entry] = random.chance(0.5) ? [x, ex] : [y, ey]
          const same: TxnCompare[] = [{ key, target: "version", cmp: "==", value: entry.version }]
          const restamp: TxnOp[] = [{ op: "put", key, value: `${balanceOf(entry.value)}:${token}` }]
          yield* Effect.ignore(ledger.txn(n, kv, { compare: same, success: restamp, failure: reads }, same))
          continue
        }
        const [from, to, fromKey, toKey] = random.chance(0.5) ? [ex, ey, x, y] : [ey, ex, y, x]
        const amount = Math.min(balanceOf(from.value), 1 + random.nextInt(10))
        const success: TxnOp[] = [
          { op: "put", key: fromKey, value: `${balanceOf(from.value) - amount}:${token}` },
          { op: "put", key: toKey, value: `${balanceOf(to.value) + amount}:${token}` },
        ]
        const byVersion: TxnCompare[] = [
          { key: x, target: "version", cmp: "==", value: ex.version },
          { key: y, target: "version", cmp: "==", value: ey.version },
        ]
        if (random.chance(0.5)) {
          yield* Effect.ignore(ledger.txn(n, kv, { compare: byVersion, success, failure: reads }, byVersion))
        } else {
          const byRevision: SwarmCompare[] = [
            { key: x, target: "modRevision", cmp: "==", value: ex.modRevision },
            { key: y, target: "modRevision", cmp: "==", value: ey.modRevision },
          ]
          const byValue: TxnCompare[] = [
            { key: x, target: "value", cmp: "==", value: ex.value },
            { key: y, target: "value", cmp: "==", value: ey.value },
          ]
          yield* Effect.ignore(ledger.txn(n, kv, { compare: byRevision, success, failure: reads }, byValue))
        }
      }
    })
  }

  /** Reads `key` as client `clientId`, recording the read; fails as the read does. */
  read(clientId: number, kv: SwarmClient, key: string): Effect.Effect<string, unknown> {
    return Effect.suspend(() => {
      const call = this.history.begin(clientId, { op: "get", key })
      return kv
        .get(key)
        .pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => (Exit.isSuccess(exit) ? this.history.end(call, exit.value) : this.history.unknown(call))),
          ),
        )
    })
  }

  /**
   * Clerk `n` while `until()`: a think time (so a world with no delays still moves its clock), then
   * an append of a fresh token (60 %) or a read of a random key of `keys` (default: all). Failures are recorded as unknown.
   */
  clerk(
    n: number,
    kv: SwarmClient,
    random: Rng,
    until: () => boolean,
    options: { readonly keys?: readonly string[]; readonly maxThinkMs?: number } = {},
  ): Effect.Effect<void> {
    const keys = options.keys ?? this.keys
    const maxThinkMs = options.maxThinkMs ?? 30
    const ledger = this
    return Effect.gen(function* () {
      let count = 0
      while (until()) {
        yield* Effect.sleep(1 + random.nextInt(maxThinkMs))
        const key = keys[random.nextInt(keys.length)]!
        if (random.chance(0.6)) {
          yield* Effect.ignore(ledger.append(n, kv, key, `${n}.${count++};`))
        } else {
          yield* Effect.ignore(ledger.read(n, kv, key))
        }
      }
    })
  }

  /** A problem in the final values (read after healing): an acknowledged append lost, or one applied twice. */
  checkFinal(values: ReadonlyMap<string, string>): string | undefined {
    for (const key of this.keys) {
      const seen = new Set<string>()
      for (const token of (values.get(key) ?? "").split(";")) {
        if (token === "") continue
        if (seen.has(`${token};`)) return `key ${key}: append ${token} applied twice`
        seen.add(`${token};`)
      }
      for (const token of this.acknowledged.get(key)!) {
        if (!seen.has(token)) return `key ${key}: acknowledged ${token} lost`
      }
    }
    return undefined
  }

  /** A problem in the transfer counters `keys` read after healing: they do not sum to `transferTotal`. */
  checkTransfers(keys: readonly [string, string], values: readonly [string, string]): string | undefined {
    if (values[0] === "" && values[1] === "") return undefined
    const sum = balanceOf(values[0]) + balanceOf(values[1])
    return sum === transferTotal
      ? undefined
      : `counters ${keys.join(" and ")} hold ${values.map((v) => JSON.stringify(v)).join(" and ")}: sum ${sum}, not ${transferTotal}`
  }

  /** A problem in the recorded history: it is not linearizable. */
  checkHistory(): string | undefined {
    const verdict = checkLinearizable(this.history.history())
    return verdict.ok ? undefined : `not linearizable (key ${verdict.key}):\n${verdict.explanation}`
  }

  /** How many CAS applied and were rejected, and how many writing transactions succeeded and failed. */
  coordinationCounts(): CoordinationCounts {
    const counts = { casApplied: 0, casRejected: 0, txnSucceeded: 0, txnFailed: 0 }
    for (const op of this.history.history()) {
      if (op.output === casApplied) counts.casApplied++
      if (op.output === casRejected) counts.casRejected++
      // Transfers and creates write; the reads before them do not count.
      if (op.input.op !== "txn" || !op.input.success.some((o) => o.op !== "get")) continue
      if (op.output === txnSucceeded) counts.txnSucceeded++
      if (op.output === txnFailed) counts.txnFailed++
    }
    return counts
  }

  get operations(): number {
    return this.history.history().length
  }

  /** A digest of the recorded history (every call, its order, its outcome): equal for equal runs. */
  digest(): string {
    const trace = new TraceDigest()
    for (const op of this.history.history()) {
      const input = op.input
      const value =
        input.op === "cas"
          ? `${input.expected}->${input.value}`
          : input.op === "txn"
            ? JSON.stringify([input.compare, input.success, input.failure, op.reads ?? []])
            : "value" in input
              ? input.value
              : ""
      trace.record(`c${op.clientId}`, input.op, input.key, value, op.call, op.return, op.output ?? "?")
    }
    return trace.value
  }
}

/** The balance a transfer counter's value `balance:token` holds (0 when absent). */
const balanceOf = (value: string): number => (value === "" ? 0 : Number(value.slice(0, value.indexOf(":"))))

/**
 * Runs a swarm over `KV_SWARM_SEEDS` consecutive seeds from a random start (or the one `KV_SEED`),
 * printing the range, and the replay command of any seed that fails; throws on the first failure.
 */
export const runSwarmSeeds = (
  name: string,
  file: string,
  defaultCount: number,
  runSeed: (seed: number) => SwarmSeedResult,
  /** Environment the run sets for itself, e.g. "KV_SIM_FLUSH_MS=12", repeated in the replay command. */
  replayEnv = "",
): void => {
  const fromEnv = process.env.KV_SEED
  const count = Number(process.env.KV_SWARM_SEEDS ?? defaultCount)
  const first = fromEnv === undefined ? 1 + Math.floor(Math.random() * 1_000_000) : Number(fromEnv)
  const seeds = fromEnv === undefined ? Array.from({ length: count }, (_, i) => first + i) : [first]
  console.log(`${name}: seeds ${first}..${first + seeds.length - 1}`)
  const started = performance.now()
  let operations = 0
  for (const seed of seeds) {
    const result = runSeed(seed)
    operations += result.operations
    if (!result.ok) {
      throw new Error(
        `${name}: seed ${seed} failed; replay: ${replayEnv === "" ? "" : `${replayEnv} `}KV_SEED=${seed} bun test ${file}\n${result.problem}`,
      )
    }
  }
  console.log(
    `${name}: ${seeds.length} seeds, ${operations} operations, ${(performance.now() - started).toFixed(0)} ms`,
  )
}

/**
 * Runs `body` with the simulated disks taking 1..`ms` ms of virtual time per flush (unless
 * KV_SIM_FLUSH_MS already says otherwise), so Raft steps inputs while a write is in flight.
 */
export const withSlowFlushes = <A>(ms: number, body: (replayEnv: string) => A): A => {
  const before = process.env.KV_SIM_FLUSH_MS
  const value = before ?? String(ms)
  process.env.KV_SIM_FLUSH_MS = value
  try {
    return body(`KV_SIM_FLUSH_MS=${value}`)
  } finally {
    if (before === undefined) delete process.env.KV_SIM_FLUSH_MS
    else process.env.KV_SIM_FLUSH_MS = before
  }
}
