import { ClientSessions, type SessionResult, snapshotJobOf } from "@kv/kvraft"
import { Decoder, Encoder } from "@msgpack/msgpack"
import { type Config, ConfigStateMachine, type IncarnationInfo } from "../config/index.ts"
import { decodeControllerCommand } from "./command.ts"

/** The result of an admin command: success, or the configuration error (kept for retries). */
export type AdminResult = SessionResult

const encoder = new Encoder()
const decoder = new Decoder()

/**
 * Work per slice of a snapshot taken while serving: configurations encoded (0.6 ms of 10 shards,
 * 4 ms of 256 on this project's 2-core test machine), bytes copied.
 */
const configsPerSlice = 256
const copyBytesPerSlice = 2 * 1024 * 1024

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

  /** msgpack `[1, configs, sessions]`: `configs` is the ConfigStateMachine's snapshot, a map. */
  snapshot(): Uint8Array {
    return encoder.encode([1, this.#configs.snapshot(), this.#sessions.toSnapshot()])
  }

  /**
   * The bytes of `snapshot()` as the state is now, after `roomBytes` free bytes, taken a slice at a
   * time by `step` while commands go on being applied: a long configuration history (10k
   * configurations of 256 shards encode in 150-330 ms) does not hold the event loop. The history
   * only grows and its configurations never change, so the job keeps the list as it is now and
   * encodes it `perSlice` configurations a step; the rest is encoded here. Call `step` until it
   * returns the bytes (and it returns them on every call after).
   */
  beginSnapshot(roomBytes: number, perSlice: number = configsPerSlice): { step(): Uint8Array | undefined } {
    const state = this.#configs.snapshot()
    const { configs } = state
    const fields = Object.entries(state)
    const before: Uint8Array[] = [new Uint8Array([0x93]), encoder.encode(1), new Uint8Array([0x80 | fields.length])]
    const after: Uint8Array[] = []
    let parts = before
    for (const [key, value] of fields) {
      parts.push(encoder.encode(key))
      if (key === "configs") parts = after
      else parts.push(encoder.encode(value))
    }
    if (fields.length > 15 || parts !== after) throw new Error("ControllerStateMachine: unexpected snapshot fields")
    after.push(encoder.encode(this.#sessions.toSnapshot()))
    const slices = (function* (): Generator<void, Uint8Array> {
      const middle: Uint8Array[] = [arrayHeader(configs.length)]
      for (let next = 0; next < configs.length; next += perSlice) {
        yield
        const end = Math.min(configs.length, next + perSlice)
        const chunk = encoder.encode(configs.slice(next, end))
        // The chunk's elements without its own array header: msgpack is context-free.
        middle.push(chunk.subarray(arrayHeader(end - next).length))
      }
      const all = [...before, ...middle, ...after]
      let length = roomBytes
      for (const part of all) length += part.length
      yield
      const out = new Uint8Array(length)
      let at = roomBytes
      let copied = 0
      for (const part of all) {
        if (copied >= copyBytesPerSlice) {
          yield
          copied = 0
        }
        out.set(part, at)
        at += part.length
        copied += part.length
      }
      return out
    })()
    return snapshotJobOf(slices)
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

/** A msgpack array header, in the shortest form (as the encoder writes it). */
const arrayHeader = (length: number): Uint8Array => {
  if (length < 16) return new Uint8Array([0x90 | length])
  if (length < 0x10000) return new Uint8Array([0xdc, length >>> 8, length & 0xff])
  const out = new Uint8Array(5)
  out[0] = 0xdd
  new DataView(out.buffer).setUint32(1, length)
  return out
}
