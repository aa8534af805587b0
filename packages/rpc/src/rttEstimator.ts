/**
 * Retransmission timeouts from measured round trips, per destination, as TCP computes them
 * (Jacobson/Karels, RFC 6298): SRTT and RTTVAR smoothed over samples, RTO = SRTT + 4·RTTVAR,
 * clamped. A lost datagram then costs about one round trip and its usual spread, not a fixed
 * timer sized for the worst server. Samples come only from requests sent once (Karn's rule: the
 * reply to a resent request cannot say which copy it answers).
 */
export interface RttOptions {
  /** Floor of the timeout: below it, a reply delayed by a scheduler hiccup would be resent. Default 5 ms. */
  readonly minRtoMs?: number
  /** Ceiling of the timeout, and of its doubling on each resend. Default 2,000 ms. */
  readonly maxRtoMs?: number
  /** Timeout toward a destination not measured yet. Default 250 ms. */
  readonly initialRtoMs?: number
}

export const defaultRttOptions: Required<RttOptions> = { minRtoMs: 5, maxRtoMs: 2_000, initialRtoMs: 250 }

/** Resends of a thin call that wait one timeout each before the doubling starts. */
export const THIN_LINEAR_RESENDS = 6
/** Calls in flight to one destination up to which a call is thin (Linux: fewer than 4 packets). */
export const THIN_CALLS = 3

/** Destinations remembered; the least recently measured is forgotten beyond this. */
const MAX_DESTINATIONS = 4096

interface RttState {
  srttMs: number
  rttvarMs: number
}

export class RttEstimator {
  private readonly options: Required<RttOptions>
  private readonly byDestination = new Map<string, RttState>()

  constructor(options: RttOptions = {}) {
    this.options = { ...defaultRttOptions, ...options }
  }

  /**
   * A round trip of `ms` to `to`, measured from the send of the copy the reply answers.
   * `samplesPerRound` is how many samples arrive per round trip (the calls in flight): RFC 6298's
   * gains assume one, so with more each weighs that much less (RFC 7323, appendix G). Otherwise 64
   * concurrent calls, whose replies arrive together, would make the estimate forget within an
   * eighth of a round trip, and one scheduler pause would time all of them out at once.
   */
  sample(to: string, ms: number, samplesPerRound = 1): void {
    const r = Math.max(0, ms)
    const state = this.byDestination.get(to)
    if (state === undefined) {
      if (this.byDestination.size >= MAX_DESTINATIONS) {
        const oldest = this.byDestination.keys().next().value
        if (oldest !== undefined) this.byDestination.delete(oldest)
      }
      this.byDestination.set(to, { srttMs: r, rttvarMs: r / 2 })
      return
    }
    // RFC 6298 §2.3, alpha 1/8 and beta 1/4; RTTVAR first, from the SRTT before this sample.
    const n = Math.max(1, samplesPerRound)
    const beta = 0.25 / n
    const alpha = 0.125 / n
    state.rttvarMs = (1 - beta) * state.rttvarMs + beta * Math.abs(state.srttMs - r)
    state.srttMs = (1 - alpha) * state.srttMs + alpha * r
    // Most recently measured last, so eviction drops destinations no longer talked to.
    this.byDestination.delete(to)
    this.byDestination.set(to, state)
  }

  /**
   * The timeout for the `attempt`-th send (0: the first), clamped, and doubled per resend, except
   * the first THIN_LINEAR_RESENDS resends of a `thin` call (few in flight to `to`). As Linux does for
   * thin TCP streams: with little in flight a timeout means a lost datagram far more often than a
   * congested peer, and doubling from the first loss made three losses in a row of a lone call
   * (one in 150 at 19% round-trip loss) cost 7 timeouts (about a second) instead of 3.
   */
  rtoMs(to: string, attempt = 0, thin = false): number {
    const state = this.byDestination.get(to)
    const base = state === undefined ? this.options.initialRtoMs : state.srttMs + 4 * state.rttvarMs
    const clamped = Math.min(this.options.maxRtoMs, Math.max(this.options.minRtoMs, base))
    const doublings = thin ? Math.max(0, attempt - THIN_LINEAR_RESENDS) : attempt
    return Math.min(this.options.maxRtoMs, clamped * 2 ** Math.min(doublings, 30))
  }

  /** The smoothed round trip to `to` in ms, undefined before the first sample. */
  srttMs(to: string): number | undefined {
    return this.byDestination.get(to)?.srttMs
  }
}
