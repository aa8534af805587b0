import { Context, Effect, Layer, type Scope } from "effect"
import { TransportError } from "./errors.ts"
import { BATCH_ITEM_HEADER_BYTES, FrameCodec, type FrameCodecOptions, type Sender } from "./frame.ts"
import type { DatagramHandler, Link } from "./link.ts"
import { injectsFaults, type NetFaults, netFaultsFromEnv } from "./netFaults.ts"
import { Reassembler, type ReassemblyOptions } from "./reassembly.ts"
import type { SimNetwork } from "./simNetwork.ts"
import { TransportStats } from "./stats.ts"
import { Timers } from "./timers.ts"
import { BindError, openUdpLink, type UdpLinkOptions } from "./udpLink.ts"

/** `sender` names the key the message came under and the role it grants (see keyRing.ts). */
export type MessageHandler = (from: string, message: Uint8Array, sender: Sender) => void

export interface TransportShape {
  /** The local `host:port` peers reply to. */
  readonly address: string
  readonly stats: TransportStats
  readonly maxMessageBytes: number
  /**
   * Sends one message, fragmenting it when it exceeds a datagram. Never throws; false (and a
   * counted drop) when the message cannot leave at all. `keyId` seals it under that key of the
   * node's ring (a reply under its request's key); default the node's own key.
   */
  send(to: string, message: Uint8Array, keyId?: number): boolean
  /**
   * Sends at once what coalescing holds for the end of the tick. A caller about to block the event
   * loop (an fsync) calls this first, or its messages would wait out the blocking call.
   */
  flush(): void
  /** Sets the single consumer of whole incoming messages (reassembled and authenticated). */
  onMessage(handler: MessageHandler): void
}

export type TransportOptions = FrameCodecOptions &
  ReassemblyOptions & {
    /** Milliseconds for fragment expiry; injectable so tests can move time (default: `timers.now`). */
    readonly now?: () => number
    /** Clock and randomness (message ids); default: the `Timers` in the context (the host's). */
    readonly timers?: Timers
    /**
     * Small messages sent to one peer in the same tick leave as one datagram (flushed in a
     * microtask). On by default over UDP, where a send costs far more than the bytes; off by
     * default on SimNetwork so the lab's per-message loss model stays per message.
     */
    readonly coalesce?: boolean
    /**
     * Drops and duplicates a fraction of outgoing datagrams, drawing from `timers.random` (seeded in
     * a simulation). Default none; `Transport.layerUdp` defaults to KV_NET_LOSS / KV_NET_DUP.
     */
    readonly faults?: NetFaults
  }

export type UdpTransportOptions = TransportOptions & UdpLinkOptions

const noHandler: MessageHandler = () => {}

let envFaults: NetFaults | undefined
/** Read once per process: the environment does not change under a running server. */
const processNetFaults = (): NetFaults => {
  envFaults ??= netFaultsFromEnv(process.env)
  return envFaults
}

interface PendingBatch {
  readonly to: string
  readonly keyId: number
  readonly messages: Uint8Array[]
  bytes: number
}

/**
 * Builds a transport over any datagram link. The link is closed when the scope closes.
 */
export const makeTransport = (
  openLink: (onDatagram: DatagramHandler) => Link | Promise<Link>,
  options: TransportOptions = {},
): Effect.Effect<TransportShape, TransportError, Scope.Scope> =>
  Effect.acquireRelease(
    // A link opened synchronously (a simulated one) opens without leaving the fiber, so a world
    // with its own scheduler never waits on the host's event loop.
    Effect.flatMap(Effect.service(Timers), (contextTimers): Effect.Effect<TransportState, TransportError> => {
      const state = new TransportState(options, options.timers ?? contextTimers)
      let opened: Link | Promise<Link>
      try {
        opened = openLink(state.receive)
      } catch (error) {
        return Effect.fail(transportError(error))
      }
      if (!(opened instanceof Promise)) {
        state.link = opened
        return Effect.succeed(state)
      }
      return Effect.tryPromise({
        try: () =>
          opened.then((link) => {
            state.link = link
            return state
          }),
        catch: transportError,
      })
    }),
    (state) => Effect.sync(() => state.close()),
  )

const transportError = (error: unknown): TransportError =>
  new TransportError({
    address: error instanceof BindError ? error.address : "?",
    message: error instanceof Error ? error.message : String(error),
  })

class TransportState implements TransportShape {
  readonly stats = new TransportStats()
  link: Link | undefined
  private readonly codec: FrameCodec
  private readonly reassembler: Reassembler
  private readonly now: () => number
  private handler: MessageHandler = noHandler
  private nextMsgId: number
  private readonly coalesce: boolean
  /** Messages waiting for the end-of-tick flush, per peer. */
  private readonly pending = new Map<string, PendingBatch>()
  private flushQueued = false
  private readonly faults: NetFaults | undefined
  private readonly random: () => number

  constructor(options: TransportOptions, timers: Timers) {
    this.codec = new FrameCodec(options)
    this.reassembler = new Reassembler(options)
    this.now = options.now ?? timers.now
    // A random start keeps a restarted node's message ids apart from its previous life's.
    this.nextMsgId = (timers.random() * 2 ** 32) >>> 0
    this.coalesce = options.coalesce ?? false
    this.faults = options.faults !== undefined && injectsFaults(options.faults) ? options.faults : undefined
    this.random = () => timers.random()
  }

  /** Every datagram leaves through here, where injected faults apply. */
  private emit(link: Link, to: string, datagram: Uint8Array): boolean {
    const faults = this.faults
    if (faults === undefined) return link.send(to, datagram)
    // Lost on the way: the sender cannot tell, so it counts as sent.
    if (faults.lossRate > 0 && this.random() < faults.lossRate) {
      this.stats.injectedLosses++
      return true
    }
    if (faults.dupRate > 0 && this.random() < faults.dupRate && link.send(to, datagram)) {
      this.stats.injectedDuplicates++
    }
    return link.send(to, datagram)
  }

  get address(): string {
    return this.link?.address ?? "?"
  }

  get maxMessageBytes(): number {
    return this.codec.maxMessageBytes
  }

  send(to: string, message: Uint8Array, via?: number): boolean {
    const link = this.link
    if (link === undefined) return false
    const keyId = this.codec.sealingKeyId(via)
    const itemBytes = BATCH_ITEM_HEADER_BYTES + message.length
    const room = this.codec.maxWholeBodyBytes
    let batch = this.pending.get(to)
    if (!this.coalesce || itemBytes > room) {
      // Too big to share a datagram: whatever is waiting for this peer goes first.
      if (batch !== undefined) this.flushBatch(batch)
      return this.sendNow(link, to, message, keyId)
    }
    // One datagram has one key: a message under another key than the waiting ones sends those first.
    if (batch !== undefined && (batch.bytes + itemBytes > room || batch.keyId !== keyId)) {
      this.flushBatch(batch)
      batch = undefined
    }
    if (batch === undefined) {
      batch = { to, keyId, messages: [], bytes: 0 }
      this.pending.set(to, batch)
    }
    batch.messages.push(message)
    batch.bytes += itemBytes
    this.stats.messagesSent++
    if (!this.flushQueued) {
      this.flushQueued = true
      queueMicrotask(this.flush)
    }
    return true
  }

  readonly flush = (): void => {
    this.flushQueued = false
    for (const batch of this.pending.values()) this.flushBatch(batch)
  }

  private flushBatch(batch: PendingBatch): void {
    this.pending.delete(batch.to)
    const link = this.link
    if (link === undefined) return
    const [first] = batch.messages
    const datagram =
      batch.messages.length === 1 && first !== undefined
        ? this.codec.encode(first, 0, batch.keyId)?.[0]
        : this.codec.encodeBatch(batch.messages, batch.keyId)
    if (datagram === undefined) return
    if (!this.emit(link, batch.to, datagram)) {
      this.stats.drop("unreachable", batch.messages.length)
      return
    }
    this.stats.datagramsSent++
    this.stats.bytesSent += datagram.length
  }

  private sendNow(link: Link, to: string, message: Uint8Array, keyId: number): boolean {
    this.nextMsgId = (this.nextMsgId + 1) >>> 0
    const datagrams = this.codec.encode(message, this.nextMsgId, keyId)
    if (datagrams === undefined) {
      this.stats.drop("oversized")
      return false
    }
    for (const datagram of datagrams) {
      if (!this.emit(link, to, datagram)) {
        this.stats.drop("unreachable")
        return false
      }
      this.stats.datagramsSent++
      this.stats.bytesSent += datagram.length
    }
    this.stats.messagesSent++
    return true
  }

  onMessage(handler: MessageHandler): void {
    this.handler = handler
  }

  readonly receive = (from: string, datagram: Uint8Array): void => {
    this.stats.datagramsReceived++
    this.stats.bytesReceived += datagram.length
    const frame = this.codec.decodeAny(datagram)
    if (typeof frame === "string") {
      this.stats.drop(frame)
      return
    }
    let message: Uint8Array
    if (frame.kind === "whole") {
      message = frame.body
    } else if (frame.kind === "batch") {
      for (const body of frame.bodies) this.deliver(from, body, frame.sender)
      return
    } else {
      // Fragments under different keys never make one message (nor one role).
      const source = frame.sender.keyId === 0 ? from : `${from}#${frame.sender.keyId}`
      const result = this.reassembler.add(source, frame.msgId, frame.index, frame.count, frame.body, this.now())
      if (result.done === false) {
        if (result.dropped !== undefined) this.stats.drop(result.dropped)
        if (result.expired !== undefined && result.expired > 0) this.stats.drop("expiredFragments", result.expired)
        return
      }
      message = result.message
    }
    this.deliver(from, message, frame.sender)
  }

  private deliver(from: string, message: Uint8Array, sender: Sender): void {
    this.stats.messagesReceived++
    try {
      this.handler(from, message, sender)
    } catch {
      // A consumer bug must not kill the receive loop; the consumer counts its own failures.
      this.stats.drop("malformed")
    }
  }

  close(): void {
    // What was sent before closing still leaves.
    this.flush()
    this.link?.close()
    this.reassembler.clear()
    this.handler = noHandler
  }
}

export class Transport extends Context.Service<Transport, TransportShape>()("@kv/rpc/Transport") {
  /**
   * Real UDP on Bun (node:dgram by default, with enlarged kernel buffers). Without `faults`, the
   * process's KV_NET_LOSS / KV_NET_DUP apply (see netFaults.ts).
   */
  static layerUdp(options: UdpTransportOptions): Layer.Layer<Transport, TransportError> {
    return Layer.effect(
      Transport,
      makeTransport((onDatagram) => openUdpLink(options, onDatagram), {
        coalesce: true,
        faults: processNetFaults(),
        ...options,
      }),
    )
  }

  /** A node on an in-process SimNetwork, for tests. */
  static layerSim(
    network: SimNetwork,
    address: string,
    options: TransportOptions = {},
  ): Layer.Layer<Transport, TransportError> {
    return Layer.effect(
      Transport,
      makeTransport((onDatagram) => network.open(address, onDatagram), options),
    )
  }
}
