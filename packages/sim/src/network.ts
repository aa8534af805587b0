/**
 * A datagram network scheduled by the virtual clock. Pure data in, callbacks out: `send`
 * decides with the network's seeded stream whether a datagram is lost, duplicated or delayed,
 * and a timer delivers it to the endpoint's handler. No sockets, no real timers.
 */
import type { VirtualClock } from "./clock.ts"
import type { TraceDigest } from "./digest.ts"
import type { Rng } from "./rng.ts"

export type Address = string

export interface Datagram {
  readonly from: Address
  readonly to: Address
  readonly payload: Uint8Array
}

/** Faults on one direction of traffic; unset fields fall back to the network's defaults. */
export interface LinkRule {
  /** Probability a datagram is dropped. */
  readonly loss?: number
  /** Probability a datagram is delivered twice (each copy with its own delay). */
  readonly duplication?: number
  /** Delivery delay, drawn uniformly from [min, max] ms; a wide range reorders. */
  readonly delayMinMs?: number
  readonly delayMaxMs?: number
  /** Drop everything in this direction. */
  readonly blocked?: boolean
}

export interface NetworkOptions {
  readonly delayMinMs?: number
  readonly delayMaxMs?: number
  readonly loss?: number
  readonly duplication?: number
  /** Datagrams in flight at most; more are dropped, since every queue has a bound. */
  readonly maxInFlight?: number
}

export interface EndpointCounts {
  sent: number
  delivered: number
  dropped: number
  duplicated: number
}

export type DatagramHandler = (datagram: Datagram) => void

export type DropReason = "partition" | "blocked" | "loss" | "unreachable" | "overflow" | "detached"

export class Endpoint {
  constructor(
    private readonly network: SimNetwork,
    readonly address: Address,
  ) {}

  send(to: Address, payload: Uint8Array): void {
    this.network.send({ from: this.address, to, payload })
  }

  get counts(): Readonly<EndpointCounts> {
    return this.network.counts(this.address)
  }
}

const zeroCounts = (): EndpointCounts => ({ sent: 0, delivered: 0, dropped: 0, duplicated: 0 })

export class SimNetwork {
  private readonly handlers = new Map<Address, DatagramHandler>()
  private readonly countsByAddress = new Map<Address, EndpointCounts>()
  private readonly rules = new Map<string, LinkRule>()
  // Address -> partition side; addresses on different sides cannot reach each other.
  private side = new Map<Address, number>()
  private defaults: Required<Omit<NetworkOptions, "maxInFlight">>
  private readonly maxInFlight: number
  private inFlight = 0

  constructor(
    private readonly clock: VirtualClock,
    private readonly rng: Rng,
    options?: NetworkOptions,
    private readonly trace?: TraceDigest,
  ) {
    this.defaults = {
      delayMinMs: options?.delayMinMs ?? 1,
      delayMaxMs: options?.delayMaxMs ?? 10,
      loss: options?.loss ?? 0,
      duplication: options?.duplication ?? 0,
    }
    this.maxInFlight = options?.maxInFlight ?? 100_000
  }

  /** Registers `address` (replacing any previous handler, as a restarted process does). */
  attach(address: Address, handler: DatagramHandler): Endpoint {
    this.handlers.set(address, handler)
    if (!this.countsByAddress.has(address)) this.countsByAddress.set(address, zeroCounts())
    return new Endpoint(this, address)
  }

  /** Datagrams in flight to a detached address are dropped on arrival. */
  detach(address: Address): void {
    this.handlers.delete(address)
  }

  counts(address: Address): Readonly<EndpointCounts> {
    return this.countsByAddress.get(address) ?? zeroCounts()
  }

  get datagramsInFlight(): number {
    return this.inFlight
  }

  setDefaults(options: Omit<NetworkOptions, "maxInFlight">): void {
    this.defaults = { ...this.defaults, ...options }
  }

  /** Splits the addresses into groups that cannot reach each other; unnamed addresses reach everyone. */
  partition(...groups: ReadonlyArray<ReadonlyArray<Address>>): void {
    const side = new Map<Address, number>()
    groups.forEach((group, i) => {
      for (const address of group) side.set(address, i)
    })
    this.side = side
    this.trace?.record("partition", groups.map((g) => g.join(",")).join("|"))
  }

  /** A rule for traffic from `from` to `to` only. */
  setRule(from: Address, to: Address, rule: LinkRule): void {
    this.rules.set(linkKey(from, to), rule)
    this.trace?.record("rule", from, to, JSON.stringify(rule))
  }

  /** Removes every partition and per-direction rule; defaults stay. */
  heal(): void {
    this.side = new Map()
    this.rules.clear()
    this.trace?.record("heal")
  }

  canReach(from: Address, to: Address): boolean {
    const a = this.side.get(from)
    const b = this.side.get(to)
    return a === undefined || b === undefined || a === b
  }

  send(datagram: Datagram): void {
    const { from, to } = datagram
    this.countFor(from).sent++
    this.trace?.record("send", this.clock.now(), from, to, datagram.payload.length)
    const rule = this.rules.get(linkKey(from, to))
    if (!this.canReach(from, to)) {
      this.drop(datagram, "partition")
      return
    }
    if (rule?.blocked === true) {
      this.drop(datagram, "blocked")
      return
    }
    if (this.rng.chance(rule?.loss ?? this.defaults.loss)) {
      this.drop(datagram, "loss")
      return
    }
    const copies = this.rng.chance(rule?.duplication ?? this.defaults.duplication) ? 2 : 1
    if (copies === 2) this.countFor(from).duplicated++
    for (let i = 0; i < copies; i++) {
      if (this.inFlight >= this.maxInFlight) {
        this.drop(datagram, "overflow")
        return
      }
      const min = rule?.delayMinMs ?? this.defaults.delayMinMs
      const max = Math.max(min, rule?.delayMaxMs ?? this.defaults.delayMaxMs)
      const delay = min + this.rng.nextDouble() * (max - min)
      this.inFlight++
      this.clock.setTimer(delay, () => this.arrive(datagram), `net ${from}->${to}`)
    }
  }

  private arrive(datagram: Datagram): void {
    this.inFlight--
    // The partition is checked again on arrival: a partition cuts datagrams already on the wire.
    if (!this.canReach(datagram.from, datagram.to)) {
      this.drop(datagram, "partition")
      return
    }
    const handler = this.handlers.get(datagram.to)
    if (handler === undefined) {
      this.drop(datagram, this.countsByAddress.has(datagram.to) ? "detached" : "unreachable")
      return
    }
    this.countFor(datagram.to).delivered++
    this.trace?.record("deliver", this.clock.now(), datagram.from, datagram.to, datagram.payload.length)
    handler(datagram)
  }

  private drop(datagram: Datagram, reason: DropReason): void {
    this.countFor(datagram.from).dropped++
    this.trace?.record("drop", this.clock.now(), datagram.from, datagram.to, reason)
  }

  private countFor(address: Address): EndpointCounts {
    let counts = this.countsByAddress.get(address)
    if (counts === undefined) {
      counts = zeroCounts()
      this.countsByAddress.set(address, counts)
    }
    return counts
  }
}

const linkKey = (from: Address, to: Address): string => `${from}\u0000${to}`
