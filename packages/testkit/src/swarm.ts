import type { RpcNodeShape } from "@kv/rpc"
import { type Rng, TraceDigest } from "@kv/sim"
import { Effect, Exit } from "effect"
import { checkLinearizable } from "./linearizability/checkLinearizable.ts"
import { HistoryRecorder } from "./linearizability/historyRecorder.ts"
import { casApplied, casRejected } from "./linearizability/operation.ts"

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

  /** A problem in the recorded history: it is not linearizable. */
  checkHistory(): string | undefined {
    const verdict = checkLinearizable(this.history.history())
    return verdict.ok ? undefined : `not linearizable (key ${verdict.key}):\n${verdict.explanation}`
  }

  get operations(): number {
    return this.history.history().length
  }

  /** A digest of the recorded history (every call, its order, its outcome): equal for equal runs. */
  digest(): string {
    const trace = new TraceDigest()
    for (const op of this.history.history()) {
      const value =
        op.input.op === "cas" ? `${op.input.expected}->${op.input.value}` : "value" in op.input ? op.input.value : ""
      trace.record(`c${op.clientId}`, op.input.op, op.input.key, value, op.call, op.return, op.output ?? "?")
    }
    return trace.value
  }
}

/**
 * Runs a swarm over `KV_SWARM_SEEDS` consecutive seeds from a random start (or the one `KV_SEED`),
 * printing the range, and the replay command of any seed that fails; throws on the first failure.
 */
export const runSwarmSeeds = (
  name: string,
  file: string,
  defaultCount: number,
  runSeed: (seed: number) => SwarmSeedResult,
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
      throw new Error(`${name}: seed ${seed} failed; replay: KV_SEED=${seed} bun test ${file}\n${result.problem}`)
    }
  }
  console.log(
    `${name}: ${seeds.length} seeds, ${operations} operations, ${(performance.now() - started).toFixed(0)} ms`,
  )
}
