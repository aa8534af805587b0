import type { DatagramHandler, Link } from "./link.ts"
import { SeededRandom } from "./random.ts"
import { type OneWayReplyClassifier, ReplyClassifier } from "./simReplies.ts"
import { hostTimers } from "./timers.ts"

export interface SimNodeCounts {
  datagramsSent: number
  bytesSent: number
  datagramsReceived: number
  bytesReceived: number
}

export interface SimNetworkOptions {
  readonly seed?: number
  /** Runs `fn` after `delayMs`; tests in virtual time pass their own scheduler. */
  readonly schedule?: (delayMs: number, fn: () => void) => void
}

/** The lab network model (labrpc): requests and replies are just datagrams here. */
const UNRELIABLE_MAX_DELAY_MS = 27
const UNRELIABLE_DROP_RATE = 0.1
const LONG_REORDER_PROBABILITY = 600 / 900

const defaultSchedule = (delayMs: number, fn: () => void): void => {
  hostTimers.setTimer(Math.max(0, delayMs), fn)
}

interface Endpoint {
  readonly link: SimLink
  readonly onDatagram: DatagramHandler
}

class SimLink implements Link {
  closed = false
  constructor(
    readonly address: string,
    private readonly network: SimNetwork,
    /** Reads this link's datagrams in sending order (fragments take their first one's verdict). */
    readonly replies: ReplyClassifier,
  ) {}

  send(to: string, datagram: Uint8Array): boolean {
    if (this.closed) return false
    this.network.transmit(this, to, datagram)
    return true
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.network.detach(this)
  }
}

/**
 * An in-process network of datagram links for tests: partitions, disconnection, loss, delay,
 * reordering and duplication, all decided by one seeded PRNG. Datagrams are real bytes, so the
 * transports above run their full codec.
 */
export class SimNetwork {
  readonly seed: number
  private readonly random: SeededRandom
  private readonly schedule: (delayMs: number, fn: () => void) => void
  private readonly endpoints = new Map<string, Endpoint>()
  private readonly disconnected = new Set<string>()
  private readonly group = new Map<string, number>()
  private readonly counts = new Map<string, SimNodeCounts>()
  private readonly oneWayReplies = new Map<string, OneWayReplyClassifier>()
  private linkFilter: ((from: string, to: string) => boolean) | undefined
  private nextEphemeral = 1
  private unreliable = false
  private longReordering = false
  private duplicateRate = 0
  private dropRate = 0
  private maxDelayMs = 0
  totalDatagrams = 0
  totalBytes = 0

  constructor(options: SimNetworkOptions = {}) {
    this.seed = options.seed ?? 1
    this.random = new SeededRandom(this.seed)
    this.schedule = options.schedule ?? defaultSchedule
  }

  /** Opens a link at `address` ("sim:0" style ephemeral when omitted). Replaces a closed link at the same address. */
  open(address: string | undefined, onDatagram: DatagramHandler): Link {
    const at = address ?? `sim-ephemeral:${this.nextEphemeral++}`
    const existing = this.endpoints.get(at)
    if (existing !== undefined && !existing.link.closed) throw new Error(`sim address ${at} is in use`)
    const link = new SimLink(at, this, new ReplyClassifier(this.oneWayReplies))
    this.endpoints.set(at, { link, onDatagram })
    return link
  }

  /** Lab "unreliable": each datagram delayed 0–27 ms and dropped with probability 10%. */
  setUnreliable(on: boolean): void {
    this.unreliable = on
  }

  /**
   * Lab "long reordering": most replies delayed 200–2200 ms (requests are not, as in labrpc).
   * Answers to request/response calls are replies; on a one-way channel, what `classifyReplies`
   * says (nothing, by default).
   */
  setLongReordering(on: boolean): void {
    this.longReordering = on
  }

  /**
   * Tells which payloads on a one-way `channel` answer something (Raft's responses), for the lab's
   * long-reordering model. Test-only knowledge stays here, off the production interfaces.
   */
  classifyReplies(channel: string, isReply: OneWayReplyClassifier): void {
    this.oneWayReplies.set(channel, isReply)
  }

  setDuplicateRate(p: number): void {
    this.duplicateRate = p
  }

  /** Extra loss on top of the unreliable model (e.g. 0.3 for the 30%-loss tests). */
  setDropRate(p: number): void {
    this.dropRate = p
  }

  /** Uniform extra delay in [0, ms] for every datagram, which reorders them. */
  setMaxDelay(ms: number): void {
    this.maxDelayMs = ms
  }

  /** Cuts a node off: nothing it sends or is sent is delivered, including datagrams in flight. */
  disconnect(address: string): void {
    this.disconnected.add(address)
  }

  connect(address: string): void {
    this.disconnected.delete(address)
  }

  isConnected(address: string): boolean {
    return !this.disconnected.has(address)
  }

  /** Splits the given addresses into sets that only reach their own set; unlisted addresses reach everyone. */
  partition(sets: readonly (readonly string[])[]): void {
    this.group.clear()
    sets.forEach((set, i) => {
      for (const address of set) this.group.set(address, i)
    })
  }

  heal(): void {
    this.group.clear()
    this.disconnected.clear()
  }

  /**
   * A finer-grained reachability rule on top of partitions, checked per datagram (e.g. which
   * servers each client can reach). Undefined removes it.
   */
  setLinkFilter(filter: ((from: string, to: string) => boolean) | undefined): void {
    this.linkFilter = filter
  }

  countsOf(address: string): SimNodeCounts {
    let c = this.counts.get(address)
    if (c === undefined) {
      c = { datagramsSent: 0, bytesSent: 0, datagramsReceived: 0, bytesReceived: 0 }
      this.counts.set(address, c)
    }
    return c
  }

  resetCounts(): void {
    this.counts.clear()
    this.totalDatagrams = 0
    this.totalBytes = 0
  }

  /** @internal */
  detach(link: SimLink): void {
    const endpoint = this.endpoints.get(link.address)
    if (endpoint?.link === link) this.endpoints.delete(link.address)
  }

  private canTalk(from: string, to: string): boolean {
    if (this.disconnected.has(from) || this.disconnected.has(to)) return false
    if (this.linkFilter !== undefined && !this.linkFilter(from, to)) return false
    const a = this.group.get(from)
    const b = this.group.get(to)
    return a === undefined || b === undefined || a === b
  }

  /** @internal */
  transmit(from: SimLink, to: string, datagram: Uint8Array): void {
    const sent = this.countsOf(from.address)
    sent.datagramsSent++
    sent.bytesSent += datagram.length
    this.totalDatagrams++
    this.totalBytes += datagram.length
    // Read before any loss, so a fragmented message's first fragment always sets the verdict.
    const reply = this.longReordering && from.replies.isReply(datagram)
    if (!this.canTalk(from.address, to)) return
    if (this.unreliable && this.random.chance(UNRELIABLE_DROP_RATE)) return
    if (this.dropRate > 0 && this.random.chance(this.dropRate)) return
    // The sender may reuse its buffer; the network owns a copy.
    const copy = datagram.slice()
    const copies = this.duplicateRate > 0 && this.random.chance(this.duplicateRate) ? 2 : 1
    for (let i = 0; i < copies; i++) this.schedule(this.delay(reply), () => this.deliver(from.address, to, copy))
  }

  private delay(reply: boolean): number {
    let ms = 0
    if (this.unreliable) ms += this.random.int(UNRELIABLE_MAX_DELAY_MS + 1)
    if (this.maxDelayMs > 0) ms += this.random.int(this.maxDelayMs + 1)
    if (reply && this.longReordering && this.random.chance(LONG_REORDER_PROBABILITY)) {
      ms += 200 + this.random.int(1 + this.random.int(2001))
    }
    return ms
  }

  private deliver(from: string, to: string, datagram: Uint8Array): void {
    const endpoint = this.endpoints.get(to)
    if (endpoint === undefined || endpoint.link.closed) return
    if (!this.canTalk(from, to)) return
    const received = this.countsOf(to)
    received.datagramsReceived++
    received.bytesReceived += datagram.length
    endpoint.onDatagram(from, datagram)
  }
}
