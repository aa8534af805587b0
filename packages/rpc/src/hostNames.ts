import { lookup } from "node:dns/promises"
import { formatAddress, isHostName, normalizeAddress, parseAddress } from "./address.ts"

/** How long an answer is used before it is asked again; the old one serves while the new lookup runs. */
export const HOST_REFRESH_MS = 5_000

/** Host names kept at once: they come from configuration files, a handful per cluster. */
const MAX_HOSTS = 1024

/** 0: whichever family the system prefers. */
export type HostLookup = (host: string, family: 0 | 4 | 6) => Promise<string>

const systemLookup: HostLookup = async (host, family) => (await lookup(host, { family })).address

interface Answer {
  ip: string | undefined
  askedAt: number
  asking: boolean
}

/**
 * Host name → IP address for sending datagrams. Bun's native send takes IP literals only, and the
 * slower send that resolves names asks DNS for every datagram. Names are asked again every
 * `refreshMs` because the address behind one can change while the process runs: a container or a
 * Kubernetes pod that moves keeps its name and gets a new address.
 */
export class HostNames {
  private readonly answers = new Map<string, Answer>()

  constructor(
    private readonly family: 0 | 4 | 6,
    private readonly resolve: HostLookup = systemLookup,
    private readonly refreshMs = HOST_REFRESH_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * The address to send to now, or undefined until the first answer arrives (the caller then sends
   * the slow way). Starts a lookup when the answer is missing or older than `refreshMs`.
   */
  ipOf(host: string): string | undefined {
    let answer = this.answers.get(host)
    if (answer === undefined) {
      if (this.answers.size >= MAX_HOSTS) return undefined
      answer = { ip: undefined, askedAt: 0, asking: false }
      this.answers.set(host, answer)
      this.ask(host, answer)
    } else if (!answer.asking && this.now() - answer.askedAt >= this.refreshMs) this.ask(host, answer)
    return answer.ip
  }

  private ask(host: string, answer: Answer): void {
    answer.asking = true
    answer.askedAt = this.now()
    this.resolve(host, this.family).then(
      (ip) => {
        answer.ip = ip
        answer.asking = false
      },
      () => {
        // A failed lookup keeps the last address: a DNS server that hiccups must not cut off a peer.
        answer.asking = false
      },
    )
  }
}

/**
 * Whether a datagram from `source` comes from the endpoint a configuration names `configured`. A
 * host name matches the address DNS gives it now (false until the first answer: the sender's
 * retry is heard).
 */
export const sourceMatcher =
  (names: HostNames) =>
  (configured: string, source: string): boolean => {
    if (configured === source) return true
    const from = normalizeAddress(source)
    if (normalizeAddress(configured) === from) return true
    const hp = parseAddress(configured)
    if (hp === undefined || !isHostName(hp.host)) return false
    const ip = names.ipOf(hp.host)
    return ip !== undefined && normalizeAddress(formatAddress(ip, hp.port)) === from
  }

export const isSourceOf = sourceMatcher(new HostNames(0))
