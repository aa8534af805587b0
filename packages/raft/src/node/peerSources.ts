import { lookup } from "node:dns/promises"
import { formatAddress, HOST_REFRESH_MS, isHostName, normalizeAddress, parseAddress } from "@kv/rpc"
import type { NodeId } from "../core/index.ts"

/**
 * Which source addresses a Raft peer's datagrams may come from. A peer sends from the socket it
 * listens on, its configured address, but the receiver sees that address as the kernel writes it:
 * `localhost` arrives as 127.0.0.1, an IPv4 sender on an IPv6 socket as ::ffff:a.b.c.d, and a host
 * name as one of its IP addresses. Both sides are brought to one form before they are compared.
 *
 * Without a cluster key this stops a non-member from speaking for a member, not a sender able to
 * forge its source address: only the cluster key (AES-256-GCM sealed datagrams) does that.
 */

/** Every form a peer's datagrams may show as their source, by peer id. */
export type PeerSources = ReadonlyMap<NodeId, ReadonlySet<string>>

/** A host name that only DNS can turn into the addresses datagrams show. */
const needsLookup = (address: string): boolean => {
  const hp = parseAddress(address)
  return hp !== undefined && isHostName(hp.host)
}

/**
 * Resolves each peer's configured address at start: IP literals and loopback names as they are,
 * host names through DNS to every address they have (the configured text is kept too, so a failed
 * lookup still accepts what it can); PeerDirectory asks again as time passes. Synchronous when no peer needs DNS, so a simulated
 * node never waits on the host.
 */
export const resolvePeerSources = (peers: Readonly<Record<number, string>>): PeerSources | Promise<PeerSources> => {
  const entries = Object.entries(peers)
  if (!entries.some(([, address]) => needsLookup(address))) {
    return new Map(entries.map(([id, address]) => [Number(id), new Set([normalizeAddress(address)])]))
  }
  return lookupPeerSources(entries)
}

const lookupPeerSources = async (entries: readonly [string, string][]): Promise<PeerSources> => {
  const out = new Map<NodeId, ReadonlySet<string>>()
  await Promise.all(
    entries.map(async ([id, address]) => {
      const forms = new Set([normalizeAddress(address)])
      const hp = parseAddress(address)
      if (hp !== undefined && needsLookup(address)) {
        try {
          for (const found of await lookup(hp.host, { all: true })) {
            forms.add(normalizeAddress(formatAddress(found.address, hp.port)))
          }
        } catch {
          // Unresolvable now: only datagrams showing the configured text itself are accepted.
        }
      }
      out.set(Number(id), forms)
    }),
  )
  return out
}

/** Whether a datagram from `source` (already normalized) may speak for peer `id`. */
export const isFromPeer = (sources: PeerSources, id: NodeId, source: string): boolean =>
  sources.get(id)?.has(source) ?? false

/**
 * Where each member lives and which sources may speak for it: the bootstrap peers first, then every
 * address a configuration entry carries (a member added later, or one added again elsewhere), and
 * addresses a member this node already knows vouches for (see addressFinder.ts). Ids nobody has
 * named are not heard: nothing says which address may speak for them.
 */
export class PeerDirectory {
  private readonly addresses = new Map<NodeId, string>()
  private readonly forms: Map<NodeId, ReadonlySet<string>>
  /** When host-named peers were last looked up; undefined while no peer has a host name. */
  private namesAskedAt: number | undefined

  constructor(
    peers: Readonly<Record<number, string>>,
    sources: PeerSources,
    private readonly now: () => number = () => performance.now(),
  ) {
    for (const [id, address] of Object.entries(peers)) this.addresses.set(Number(id), address)
    this.forms = new Map(sources)
    if ([...this.addresses.values()].some(needsLookup)) this.namesAskedAt = this.now()
  }

  /**
   * The sources each peer may speak from. Host names are looked up again every HOST_REFRESH_MS:
   * a container or pod that moves keeps its name and gets a new address, and its datagrams are
   * believed once DNS says the new address is its own (never on the datagram's word).
   */
  get sources(): PeerSources {
    if (this.namesAskedAt !== undefined && this.now() - this.namesAskedAt >= HOST_REFRESH_MS) this.refreshNames()
    return this.forms
  }

  private refreshNames(): void {
    this.namesAskedAt = this.now()
    for (const [id, address] of this.addresses) {
      if (!needsLookup(address)) continue
      void lookupPeerSources([[String(id), address]]).then((found) => {
        const resolved = found.get(id)
        // A failed lookup yields only the configured text: keep the addresses known before.
        if (resolved === undefined || resolved.size <= 1 || this.addresses.get(id) !== address) return
        this.forms.set(id, resolved)
      })
    }
  }

  addressOf(id: NodeId): string | undefined {
    return this.addresses.get(id)
  }

  /** Every id with a known address but `self`: the members this node can ask about the others. */
  knownPeers(self: NodeId): [NodeId, string][] {
    return [...this.addresses].filter(([id]) => id !== self)
  }

  /**
   * Takes the addresses a membership carries ("" = known from elsewhere, kept as it is). The log
   * is the authority: its address replaces whatever was known, vouched for or configured.
   */
  learn(membership: { readonly members: readonly MemberAddress[] }): void {
    for (const { id, address } of membership.members) {
      if (address === "" || this.addresses.get(id) === address) continue
      this.set(id, address)
    }
  }

  /**
   * Takes addresses a known member's membership names, for ids this node has no address for
   * (never replacing one it has: an answer cannot move a member it already hears). Returns the
   * ids learned.
   */
  vouch(members: readonly MemberAddress[]): NodeId[] {
    const learned: NodeId[] = []
    for (const { id, address } of members) {
      if (address === "" || this.addresses.has(id)) continue
      this.set(id, address)
      learned.push(id)
    }
    return learned
  }

  private set(id: NodeId, address: string): void {
    this.addresses.set(id, address)
    this.forms.set(id, new Set([normalizeAddress(address)]))
    if (needsLookup(address)) {
      this.namesAskedAt ??= this.now()
      // Until DNS answers, only datagrams showing the configured text itself are believed.
      void lookupPeerSources([[String(id), address]]).then((found) => {
        const resolved = found.get(id)
        if (resolved !== undefined && this.addresses.get(id) === address) this.forms.set(id, resolved)
      })
    }
  }
}

/** A member's id and address as a membership or a status answer names it ("" when unknown there). */
export interface MemberAddress {
  readonly id: NodeId
  readonly address: string
}
