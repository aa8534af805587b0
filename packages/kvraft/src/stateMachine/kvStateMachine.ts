/**
 * The key/value state machine replicated by kvraft: a map of strings plus the client sessions
 * that make writes exactly-once. `apply` is a pure function of the state and the command, so
 * every replica that applies the same log holds the same state. Reads are not commands: the
 * server answers them with `get` once ReadIndex says the replica is up to date.
 */
import { Decoder, Encoder } from "@msgpack/msgpack"
import type { KvCommand, KvOp } from "./command.ts"
import { type KvLimits, resolveKvLimits } from "./limits.ts"
import { type KvResult, kvError, okResult } from "./result.ts"
import { ClientSessions } from "./sessions.ts"
import { utf8ConcatExceeds, utf8Exceeds } from "./utf8.ts"

const snapshotVersion = 1

// Snapshots are rare and large; separate instances keep the command codec's buffers small.
const snapshotEncoder = new Encoder()
const snapshotDecoder = new Decoder()

export class KvStateMachine {
  readonly limits: KvLimits
  readonly #data = new Map<string, string>()
  #sessions: ClientSessions

  constructor(limits?: Partial<KvLimits>) {
    this.limits = resolveKvLimits(limits)
    this.#sessions = new ClientSessions(this.limits)
  }

  /**
   * The client sessions, for metrics and shard migration. Change them only as the result of
   * applying a log entry, or replicas diverge.
   */
  get sessions(): ClientSessions {
    return this.#sessions
  }

  apply(cmd: KvCommand): KvResult {
    const verdict = this.#sessions.check(cmd.clientId, cmd.seq, cmd.ackedBelow, cmd.nowMs)
    if (verdict.kind !== "apply") return verdict.result
    const result = this.#applyOp(cmd.op)
    this.#sessions.record(cmd.clientId, cmd.seq, result, cmd.nowMs)
    return result
  }

  /**
   * An error `op` is certain to get whatever the state, or undefined. Lets a server refuse an
   * oversized write before it costs a log entry. Only limits that do not depend on the current
   * value are checked: a replica's state may lag (a follower, a new leader still applying), and an
   * answer from stale state would not be linearizable; `apply` checks the append's result.
   */
  precheck(op: KvOp): KvResult | undefined {
    const { maxKeyBytes, maxValueBytes } = this.limits
    if (utf8Exceeds(op.key, maxKeyBytes)) return kvError("KeyTooLarge", `key exceeds ${maxKeyBytes} bytes`)
    if (op.op !== "delete" && utf8Exceeds(op.value, maxValueBytes)) {
      return kvError("ValueTooLarge", `value exceeds ${maxValueBytes} bytes`)
    }
    return undefined
  }

  /** The value of `key`, or "" if absent. */
  get(key: string): string {
    return this.#data.get(key) ?? ""
  }

  /** Number of keys. */
  size(): number {
    return this.#data.size
  }

  /** msgpack `[version, [key, value, key, value, ...], sessions]`. */
  snapshot(): Uint8Array {
    const flat: string[] = new Array(this.#data.size * 2)
    let i = 0
    for (const [key, value] of this.#data) {
      flat[i++] = key
      flat[i++] = value
    }
    return snapshotEncoder.encode([snapshotVersion, flat, this.#sessions.toSnapshot()])
  }

  /** Rebuilds a state machine from `snapshot()` bytes. Throws an Error saying what is wrong if corrupt. */
  static restore(bytes: Uint8Array, limits?: Partial<KvLimits>): KvStateMachine {
    let decoded: unknown
    try {
      decoded = snapshotDecoder.decode(bytes)
    } catch (cause) {
      throw new Error(`KvStateMachine.restore: corrupt snapshot: not msgpack (${String(cause)})`, { cause })
    }
    if (!Array.isArray(decoded) || decoded.length !== 3) {
      throw new Error("KvStateMachine.restore: corrupt snapshot: expected [version, data, sessions]")
    }
    const [version, flat, sessions] = decoded as unknown[]
    if (version !== snapshotVersion) {
      throw new Error(`KvStateMachine.restore: unsupported snapshot version ${String(version)}`)
    }
    if (!Array.isArray(flat) || flat.length % 2 !== 0) {
      throw new Error("KvStateMachine.restore: corrupt snapshot: data is not a list of key/value pairs")
    }
    const machine = new KvStateMachine(limits)
    for (let i = 0; i < flat.length; i += 2) {
      const key: unknown = flat[i]
      const value: unknown = flat[i + 1]
      if (typeof key !== "string" || typeof value !== "string") {
        throw new Error(`KvStateMachine.restore: corrupt snapshot: entry ${i / 2} is not a pair of strings`)
      }
      machine.#data.set(key, value)
    }
    try {
      machine.#sessions = ClientSessions.fromSnapshot(sessions, machine.limits)
    } catch (cause) {
      throw new Error(`KvStateMachine.restore: ${(cause as Error).message}`, { cause })
    }
    return machine
  }

  #applyOp(op: KvOp): KvResult {
    const error = this.#sizeError(op)
    if (error !== undefined) return error
    switch (op.op) {
      case "put":
        this.#data.set(op.key, op.value)
        break
      case "append":
        this.#data.set(op.key, (this.#data.get(op.key) ?? "") + op.value)
        break
      case "delete":
        this.#data.delete(op.key)
        break
    }
    return okResult
  }

  #sizeError(op: KvOp): KvResult | undefined {
    const { maxKeyBytes, maxValueBytes } = this.limits
    if (utf8Exceeds(op.key, maxKeyBytes)) {
      return kvError("KeyTooLarge", `key exceeds ${maxKeyBytes} bytes`)
    }
    if (op.op === "put" && utf8Exceeds(op.value, maxValueBytes)) {
      return kvError("ValueTooLarge", `value exceeds ${maxValueBytes} bytes`)
    }
    if (op.op === "append" && utf8ConcatExceeds(this.#data.get(op.key) ?? "", op.value, maxValueBytes)) {
      return kvError("ValueTooLarge", `appending would make the value exceed ${maxValueBytes} bytes`)
    }
    return undefined
  }
}
