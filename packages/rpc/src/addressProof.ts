/**
 * Keeps a server from being a reflection amplifier. UDP source addresses can be forged: without
 * this, a small request sent "from" a victim's address would make the server send the victim a
 * reply many times larger (a 1 MB value, a long status). A reply larger than `maxReplyFactor`
 * times its request may only go to an address that has shown it receives what is sent to it;
 * any other gets a small challenge carrying a token, which the caller's rpc layer echoes in its
 * resent request. Tokens are stateless (an HMAC of the address and a coarse time window under a
 * per-process secret), so challenging costs no memory; only proven addresses are remembered, in
 * a bounded table.
 */
import { hostTimers } from "./timers.ts"

export interface AddressProofOptions {
  /** A reply at most this many times the size of its request goes anywhere. Default 3. */
  readonly maxReplyFactor?: number
  /** Addresses proven from the start and forever: the node's configured peers. */
  readonly trusted?: Iterable<string>
  /** How long a proven address stays proven. Default 10 minutes. */
  readonly provenForMs?: number
  /** Bound on the table of proven addresses; the oldest proof is forgotten first. Default 16,384. */
  readonly maxProvenAddresses?: number
  /** Milliseconds, for token windows and proof expiry; injectable for tests. */
  readonly now?: () => number
}

export const DEFAULT_MAX_REPLY_FACTOR = 3
const DEFAULT_PROVEN_FOR_MS = 10 * 60_000
const DEFAULT_MAX_PROVEN_ADDRESSES = 16_384
/** A token is accepted in the window it was made in and the next: 1–2 minutes. */
const TOKEN_WINDOW_MS = 60_000
export const TOKEN_BYTES = 16

export class AddressProof {
  readonly maxReplyFactor: number
  private readonly secret = crypto.getRandomValues(new Uint8Array(32))
  private readonly trusted = new Set<string>()
  /** Address → when its proof expires; insertion order is proof order, for eviction. */
  private readonly proven = new Map<string, number>()
  private readonly provenForMs: number
  private readonly maxProvenAddresses: number
  private readonly now: () => number

  constructor(options: AddressProofOptions = {}) {
    this.maxReplyFactor = options.maxReplyFactor ?? DEFAULT_MAX_REPLY_FACTOR
    if (!(this.maxReplyFactor >= 1)) throw new RangeError(`maxReplyFactor must be >= 1, got ${this.maxReplyFactor}`)
    this.provenForMs = options.provenForMs ?? DEFAULT_PROVEN_FOR_MS
    this.maxProvenAddresses = options.maxProvenAddresses ?? DEFAULT_MAX_PROVEN_ADDRESSES
    this.now = options.now ?? hostTimers.now
    if (options.trusted !== undefined) this.trust(options.trusted)
  }

  trust(addresses: Iterable<string>): void {
    for (const address of addresses) this.trusted.add(address)
  }

  /** Whether a reply of `replyBytes` to a request of `requestBytes` may go to `to` as it is. */
  mayReply(to: string, requestBytes: number, replyBytes: number): boolean {
    // The common case costs one comparison: small replies need no proof.
    return replyBytes <= this.maxReplyFactor * requestBytes || this.isProven(to)
  }

  isProven(address: string): boolean {
    if (this.trusted.has(address)) return true
    const expires = this.proven.get(address)
    if (expires === undefined) return false
    if (expires > this.now()) return true
    this.proven.delete(address)
    return false
  }

  /** The token that proves `address` receives what this node sends it, in the current window. */
  tokenFor(address: string): Uint8Array {
    return this.token(address, Math.floor(this.now() / TOKEN_WINDOW_MS))
  }

  /** Checks a token echoed by `address`; a valid one proves the address for `provenForMs`. */
  prove(address: string, token: Uint8Array): boolean {
    if (token.length !== TOKEN_BYTES) return false
    const window = Math.floor(this.now() / TOKEN_WINDOW_MS)
    if (!equal(token, this.token(address, window)) && !equal(token, this.token(address, window - 1))) return false
    this.proven.delete(address)
    if (this.proven.size >= this.maxProvenAddresses) {
      const oldest = this.proven.keys().next()
      if (oldest.done !== true) this.proven.delete(oldest.value)
    }
    this.proven.set(address, this.now() + this.provenForMs)
    return true
  }

  private token(address: string, window: number): Uint8Array {
    const hasher = new Bun.CryptoHasher("sha256", this.secret)
    hasher.update(`${window}|${address}`)
    return (hasher.digest() as Uint8Array).subarray(0, TOKEN_BYTES)
  }
}

/** Constant time in the token's contents; the length is public. */
const equal = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  let diff = 0
  for (let k = 0; k < a.length; k++) diff |= (a[k] as number) ^ (b[k] as number)
  return diff === 0
}
