import type { DropReason } from "./stats.ts"

export interface ReassemblyOptions {
  /** Total bytes held in incomplete messages, across all senders. */
  readonly maxBufferedBytes?: number
  /** Incomplete messages held at once. */
  readonly maxPendingMessages?: number
  /** An incomplete message older than this is discarded. */
  readonly expireMs?: number
}

interface Pending {
  readonly parts: (Uint8Array | undefined)[]
  readonly firstSeenMs: number
  received: number
  bytes: number
}

export type ReassemblyResult =
  | { readonly done: true; readonly message: Uint8Array }
  | { readonly done: false; readonly dropped?: DropReason; readonly expired?: number }

const incomplete: ReassemblyResult = { done: false }

/**
 * Rebuilds fragmented messages. Memory is bounded on both axes (bytes and messages), so a flood of
 * fragments that never complete costs at most the budget and then is dropped, never an OOM.
 */
export class Reassembler {
  private readonly pending = new Map<string, Pending>()
  private bufferedBytes = 0
  private readonly maxBufferedBytes: number
  private readonly maxPendingMessages: number
  private readonly expireMs: number

  constructor(options: ReassemblyOptions = {}) {
    this.maxBufferedBytes = options.maxBufferedBytes ?? 64 * 1024 * 1024
    this.maxPendingMessages = options.maxPendingMessages ?? 1024
    this.expireMs = options.expireMs ?? 5_000
  }

  get pendingMessages(): number {
    return this.pending.size
  }

  get buffered(): number {
    return this.bufferedBytes
  }

  add(from: string, msgId: number, index: number, count: number, body: Uint8Array, nowMs: number): ReassemblyResult {
    const expired = this.expire(nowMs)
    const key = `${from}#${msgId}`
    let entry = this.pending.get(key)
    if (entry === undefined) {
      if (this.pending.size >= this.maxPendingMessages) return { done: false, dropped: "queueFull", expired }
      entry = { parts: new Array(count), firstSeenMs: nowMs, received: 0, bytes: 0 }
      this.pending.set(key, entry)
    } else if (entry.parts.length !== count) {
      return { done: false, dropped: "malformed", expired }
    }
    if (entry.parts[index] !== undefined) return expired > 0 ? { done: false, expired } : incomplete
    if (this.bufferedBytes + body.length > this.maxBufferedBytes) {
      return { done: false, dropped: "queueFull", expired }
    }
    // Copy: the datagram buffer may be reused by the socket after this callback returns.
    entry.parts[index] = body.slice()
    entry.received++
    entry.bytes += body.length
    this.bufferedBytes += body.length
    if (entry.received < count) return expired > 0 ? { done: false, expired } : incomplete
    this.pending.delete(key)
    this.bufferedBytes -= entry.bytes
    const message = new Uint8Array(entry.bytes)
    let offset = 0
    for (const part of entry.parts) {
      if (part === undefined) continue
      message.set(part, offset)
      offset += part.length
    }
    return { done: true, message }
  }

  /** Drops incomplete messages older than expireMs; returns how many. Map order is arrival order. */
  expire(nowMs: number): number {
    let n = 0
    for (const [key, entry] of this.pending) {
      if (nowMs - entry.firstSeenMs < this.expireMs) break
      this.pending.delete(key)
      this.bufferedBytes -= entry.bytes
      n++
    }
    return n
  }

  clear(): void {
    this.pending.clear()
    this.bufferedBytes = 0
  }
}
