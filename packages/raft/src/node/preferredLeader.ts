/**
 * A group may name the member that should lead it whenever that member is up and holds the log
 * (`RaftNodeConfig.preferredLeader`). Co-hosted groups that name the same host this way take their
 * Readies in the same rounds on both ends (readyRounds.ts), so their batches travel together.
 */
import { normalizeAddress } from "@kv/rpc"
import type { NodeId, Status } from "../core/index.ts"

/** After a hand-over that did not take (the preferred member lost the election), wait this many election timeouts. */
export const PREFERRED_RETRY_ELECTIONS = 10

/**
 * How long the preferred member must hold the log before it is handed leadership, in election
 * timeouts (3 s at the defaults). A replica back from a restart holds the log long before it has
 * applied it (a long tail replays for a second or more): led by it at once, the group would answer
 * nothing until it had. The leader cannot see a follower's applied index; this bounds the case.
 */
export const PREFERRED_SETTLE_ELECTIONS = 10

type PreferredState = "not-ready" | "ready" | "unheard"

/**
 * Where `preferred` stands for a hand-over, on the leader: "ready" is a voter it replicates to (not
 * sending it a snapshot), heard from within the last election timeout, holding every entry
 * committed by `committedBefore` (the commit index at the leader's previous look: under load the
 * newest commit is often a quorum's without it yet, while a follower that keeps up has always
 * caught up with the commit of a moment ago), with no transfer under way. The transfer itself waits
 * for it to hold the whole log, refusing proposals meanwhile (a round trip). "unheard" is all of
 * that but not heard from since the last quorum check, which forgets every follower once per
 * election timeout: one such look proves nothing, two in a row do.
 */
const preferredLeaderState = (status: Status, preferred: NodeId, committedBefore: number): PreferredState => {
  if (status.role !== "leader" || status.id === preferred || status.leadTransferee !== 0) return "not-ready"
  const pr = status.progress?.find((p) => p.id === preferred)
  // Probing is no bar: a follower whose acknowledgements wait for a slow disk is sent back to probe
  // now and then and keeps up all the same.
  if (pr === undefined || pr.role !== "voter" || pr.state === "snapshot" || pr.match < committedBefore) {
    return "not-ready"
  }
  return pr.recentActive ? "ready" : "unheard"
}

/** What a leader's look at the preferred member reads from its node. */
export interface LeaderView {
  readonly leading: boolean
  /**
   * Whether the service behind the leader still replays its restart's log: its followers give way
   * to it and apply nothing meanwhile, so a member handed leadership then would have all of it
   * still to apply. The settling wait starts once the replay is over.
   */
  readonly replaying: boolean
  readonly commit: number
  readonly status: () => Status
  /** Where a member lives (the bootstrap peers', or what the configuration entry said). */
  readonly addressOf: (id: NodeId) => string | undefined
}

/**
 * A leader's watch over the preferred member, given by address (a member replaced under a new id
 * at the same address is preferred in its turn): looked at once per `lookEveryMs` of wall time, it
 * says when to hand leadership over.
 */
export class PreferredLeaderWatch {
  readonly #address: string
  readonly #lookEveryMs: number
  readonly #electionMs: number
  #lookedAt = Number.NEGATIVE_INFINITY
  /** Since when the preferred member has been ready; undefined while it is not. */
  #readySince: number | undefined
  #unheard = false
  #handedAt = Number.NEGATIVE_INFINITY
  #previousCommit = 0

  constructor(address: string, timing: { readonly lookEveryMs: number; readonly electionMs: number }) {
    this.#address = normalizeAddress(address)
    this.#lookEveryMs = timing.lookEveryMs
    this.#electionMs = timing.electionMs
  }

  /** The member to hand leadership to now, if any (counted as handed to). */
  look(now: number, node: LeaderView): NodeId | undefined {
    if (now - this.#lookedAt < this.#lookEveryMs) return undefined
    this.#lookedAt = now
    const committedBefore = this.#previousCommit
    this.#previousCommit = node.commit
    const status = node.leading ? node.status() : undefined
    const preferred = status === undefined ? undefined : this.#memberIn(status, node.addressOf)
    const state =
      status === undefined || preferred === undefined || node.replaying
        ? "not-ready"
        : preferredLeaderState(status, preferred, committedBefore)
    if (state === "not-ready" || (state === "unheard" && this.#unheard)) {
      this.#readySince = undefined
      this.#unheard = false
      return undefined
    }
    this.#unheard = state === "unheard"
    this.#readySince ??= now
    if (state === "unheard" || now - this.#readySince < PREFERRED_SETTLE_ELECTIONS * this.#electionMs) return undefined
    if (now - this.#handedAt < PREFERRED_RETRY_ELECTIONS * this.#electionMs) return undefined
    this.#handedAt = now
    return preferred
  }

  #memberIn(status: Status, addressOf: LeaderView["addressOf"]): NodeId | undefined {
    for (const m of status.membership.members) {
      if (normalizeAddress(addressOf(m.id) ?? m.address) === this.#address) return m.id
    }
    return undefined
  }
}
