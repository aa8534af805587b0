import { ClientSessions, type SessionResult } from "@kv/kvraft"
import { Decoder, Encoder } from "@msgpack/msgpack"
import { type Config, ConfigStateMachine, type IncarnationInfo } from "../config/index.ts"
import { decodeControllerCommand } from "./command.ts"

/** The result of an admin command: success, or the configuration error (kept for retries). */
export type AdminResult = SessionResult

const encoder = new Encoder()
const decoder = new Decoder()

/**
 * The replicated controller: the configuration history plus client sessions, so a retried
 * join/leave/move is applied once and answered with its first result.
 */
export class ControllerStateMachine {
  #configs: ConfigStateMachine
  #sessions: ClientSessions<AdminResult>

  constructor(readonly nShards: number) {
    this.#configs = new ConfigStateMachine(nShards)
    this.#sessions = new ClientSessions<AdminResult>()
  }

  apply(command: Uint8Array): AdminResult {
    const c = decodeControllerCommand(command)
    if (c === undefined) throw new Error("undecodable controller command in the log")
    const verdict = this.#sessions.check(c.clientId, c.seq, c.ackedBelow, c.nowMs)
    if (verdict.kind !== "apply") return verdict.result
    const applied = this.#configs.apply(c.op)
    const result: AdminResult = applied.ok
      ? { ok: true }
      : { ok: false, error: applied.error, message: applied.message }
    this.#sessions.record(c.clientId, c.seq, result, c.nowMs)
    return result
  }

  query(num: number): Config {
    return this.#configs.query(num)
  }

  latest(): Config {
    return this.#configs.latest()
  }

  serversOf(gid: number): readonly string[] {
    return this.#configs.serversOf(gid)
  }

  incarnationOf(gid: number): IncarnationInfo | undefined {
    return this.#configs.incarnationOf(gid)
  }

  snapshot(): Uint8Array {
    return encoder.encode([1, this.#configs.snapshot(), this.#sessions.toSnapshot()])
  }

  restore(bytes: Uint8Array): void {
    const decoded = decoder.decode(bytes)
    if (!Array.isArray(decoded) || decoded.length !== 3 || decoded[0] !== 1) {
      throw new Error("corrupt shard-controller snapshot: expected [1, configs, sessions]")
    }
    this.#configs = ConfigStateMachine.fromSnapshot(decoded[1])
    this.#sessions = ClientSessions.fromSnapshot<AdminResult>(decoded[2])
  }
}
