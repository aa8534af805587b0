import type { RpcNodeShape } from "@kv/rpc"
import { Effect, Latch, Option, type Scope } from "effect"
import type { NodeId } from "../core/index.ts"
import type { PeerDirectory } from "./peerSources.ts"
import { RaftStatusMethod } from "./statusMethod.ts"

/**
 * How a lagging member comes to hear a member its log does not name yet (thesis §4.1). A member
 * partitioned while the group added a node, which then became leader, gets Appends from an id no
 * configuration entry it holds carries an address for; the entry that does is in the log that
 * leader is trying to send it. Dropping those forever leaves it a pre-candidate for good.
 *
 * The trust rule: a datagram is believed for an id only from an address the log names for that id,
 * or that a member this node already knows names for it. So when a datagram claims an id this node
 * has no address for, it is dropped (as `wrongSender`) and the node asks the members it knows for
 * their view of the group (`raft.status`, which lists each member's address); ids they name that it
 * has no address for are learned, and the new leader's next heartbeat is heard. A configuration
 * entry naming that id later replaces the learned address; an answer never replaces one this node
 * has, so no datagram, forged or not, can move a member this node already hears.
 *
 * Rejected: believing an unknown id on first contact. Without a cluster key anyone reaching the port
 * could claim a fresh id and, as that id, lead a higher term and overwrite this node's log. With a
 * key it is no better: clients and admin tools hold the same key, so the key says "of this cluster",
 * not "a Raft member". Asking a known member keeps the old guarantee (the member's answer is as
 * trusted as its own datagrams; an off-path sender would also have to guess the request's random id).
 *
 * The limit: a node whose known members are all gone (removed and shut down while it was cut off)
 * finds no one to ask; restarting it with `peers` naming a current member repairs that.
 */
export interface AddressFinder {
  /** A datagram claimed an id this node has no address for: ask the members it knows. */
  readonly ask: () => void
}

export interface AddressFinderOptions {
  readonly self: NodeId
  readonly directory: PeerDirectory
  readonly rpc: RpcNodeShape
  /**
   * Least time between two rounds of questions (one call per known member each), so a stream of
   * datagrams from unknown ids, a lagging node's or a forger's, costs at most one round per interval.
   */
  readonly intervalMs: number
  readonly attemptTimeoutMs: number
}

export const startAddressFinder = (options: AddressFinderOptions): Effect.Effect<AddressFinder, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { self, directory, rpc, intervalMs, attemptTimeoutMs } = options
    const asked = Latch.makeUnsafe(false)
    const round = Effect.gen(function* () {
      const answers = yield* Effect.forEach(
        directory.knownPeers(self),
        ([, address]) =>
          rpc.call(address, RaftStatusMethod, {}, { attemptTimeoutMs, deadlineMs: intervalMs }).pipe(Effect.option),
        { concurrency: "unbounded" },
      )
      const learned = new Set<NodeId>()
      for (const answer of answers) {
        if (Option.isSome(answer)) for (const id of directory.vouch(answer.value.members)) learned.add(id)
      }
      // Ids no known member names stay unheard: a forger's, or a member's none of them knows yet.
      if (learned.size === 0) return
      yield* Effect.logInfo(
        `raft: learned where members ${[...learned].join(", ")} live from members this node knows`,
      ).pipe(Effect.annotateLogs({ node: self }))
    })
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.gen(function* () {
          yield* asked.await
          asked.closeUnsafe()
          yield* round
          yield* Effect.sleep(intervalMs)
        }),
      ),
    )
    return { ask: () => asked.openUnsafe() }
  })
