import type { Method, PermissionDenied, RpcNodeShape } from "@kv/rpc"
import { Clock, Duration, Effect, Random } from "effect"
import { monotonicMs } from "../commandClock.ts"
import { MemberListMethod } from "../members/protocol.ts"
import { Timeout } from "./errors.ts"

export interface LeaderCallerOptions {
  /** Overall bound for one operation, retries included; then `Timeout`. Default 30 s. */
  readonly deadlineMs?: number
  /** How long one server gets before the next one is tried. Default 1 s. */
  readonly perServerMs?: number
  /**
   * Fixed resend interval to the same server while waiting for its reply. Default: the rpc node's
   * retransmission timeout for that server, from the round trips it measured (rttEstimator.ts in
   * @kv/rpc): a lost request or reply costs about one round trip, not a fixed 200 ms.
   */
  readonly attemptTimeoutMs?: number
  /**
   * How often the client asks the server that answers for the group's members, adding their
   * addresses to its list (0: never); also each time another server starts answering (a new
   * leader). Default 1 s: one small request a second per client. Without it, a client whose
   * configured replicas were all replaced one by one would lose the group.
   */
  readonly refreshMembersMs?: number
}

interface WrongLeaderReply {
  readonly ok: false
  readonly error: "WrongLeader"
  readonly leaderHint: string
}

const isWrongLeader = (reply: unknown): reply is WrongLeaderReply =>
  typeof reply === "object" && reply !== null && (reply as { error?: unknown }).error === "WrongLeader"

/** What a caller may do while a call waits. */
export interface CallWatch {
  /**
   * A server left a request unanswered for a retransmission timeout (it is resent). `abandon`
   * ends the whole call at once as a `Timeout`, without trying the group's other servers: for a
   * caller that learns meanwhile that the group is not the one to ask.
   */
  readonly onUnanswered: (abandon: () => void) => void
}

export interface LeaderCaller {
  readonly servers: readonly string[]
  /**
   * Sends to the cached leader until a reply other than WrongLeader arrives, moving on from
   * silent or wrong servers and following leader hints, until the deadline.
   */
  call<Req, Res>(
    method: Method<Req, Res>,
    request: () => Req,
    what: { readonly operation: string; readonly key: string },
    watch?: CallWatch,
  ): Effect.Effect<Exclude<Res, WrongLeaderReply>, Timeout | PermissionDenied>
  /** Replaces the server list (a group's membership changed); keeps the leader if still listed. */
  setServers(servers: readonly string[]): void
}

/** Bound on the server list, which grows by the leaders servers name. */
const MAX_SERVERS = 64

/** Leader discovery and failover for a Raft-replicated service, shared by every client. */
export const makeLeaderCaller = (
  rpc: RpcNodeShape,
  initialServers: readonly string[],
  options: LeaderCallerOptions = {},
): LeaderCaller => {
  let servers = [...initialServers]
  let leader = 0
  const deadlineMs = options.deadlineMs ?? 30_000
  const perServerMs = options.perServerMs ?? 1_000
  const attemptTimeoutMs = options.attemptTimeoutMs
  const refreshMembersMs = options.refreshMembersMs ?? 1_000
  let lastRefresh = Number.NEGATIVE_INFINITY
  const timeoutOf = (what: { readonly operation: string; readonly key: string }) =>
    new Timeout({ operation: what.operation, key: what.key, afterMs: deadlineMs })
  let lastAnswered = ""

  const learn = (address: string): void => {
    if (address !== "" && !servers.includes(address) && servers.length < MAX_SERVERS) servers = [...servers, address]
  }

  /** One question to a server that just answered: the members it knows, learned, failures ignored. */
  const refreshMembers = (address: string): Effect.Effect<void> =>
    rpc.call(address, MemberListMethod, { leaderOnly: false }, { attemptTimeoutMs, deadlineMs: perServerMs }).pipe(
      Effect.tap((reply) =>
        Effect.sync(() => {
          if (reply.ok) for (const member of reply.members) learn(member.address)
        }),
      ),
      Effect.ignore,
    )

  /**
   * A chain of flatMaps rather than a generator: the common case (the cached leader answers) is
   * one RPC and one continuation, which matters on every client's hot path.
   */
  const call = <Req, Res>(
    method: Method<Req, Res>,
    request: () => Req,
    what: { readonly operation: string; readonly key: string },
    watch?: CallWatch,
  ): Effect.Effect<Exclude<Res, WrongLeaderReply>, Timeout | PermissionDenied> =>
    Effect.withFiber((fiber) => {
      // Time and randomness from the fiber's services: virtual in a simulation.
      const clock = fiber.getRef(Clock.Clock)
      const random = fiber.getRef(Random.Random)
      const start = monotonicMs(clock)
      let tried = 0
      let abandoned = false
      const onUnanswered =
        watch === undefined
          ? undefined
          : (abandonRpc: () => void) =>
              watch.onUnanswered(() => {
                abandoned = true
                abandonRpc()
              })
      const attempt = (): Effect.Effect<Exclude<Res, WrongLeaderReply>, Timeout | PermissionDenied> => {
        // The first attempt starts now: one clock read fewer on every call (Clock reads a BigInt).
        const elapsed = tried === 0 ? 0 : monotonicMs(clock) - start
        if (elapsed >= deadlineMs || servers.length === 0) return Effect.fail(timeoutOf(what))
        const target = leader % servers.length
        // The list may be replaced (setServers, members learned) while the call is out.
        const address = servers[target]!
        return Effect.matchEffect(
          rpc.call(address, method, request(), {
            attemptTimeoutMs,
            deadlineMs: Math.max(1, Math.min(perServerMs, deadlineMs - elapsed)),
            onUnanswered,
          }),
          {
            onSuccess: (reply) => {
              if (isWrongLeader(reply)) return moveOn(target, reply)
              const answer = reply as Exclude<Res, WrongLeaderReply>
              const now = monotonicMs(clock)
              const answered = address
              const due = now - lastRefresh >= refreshMembersMs || answered !== lastAnswered
              if (refreshMembersMs <= 0 || !due) return Effect.succeed(answer)
              lastRefresh = now
              lastAnswered = answered
              // The answer does not wait for the list: one lost datagram of that second question
              // held a lab client's read back for 170 ms of its 1 s bound.
              return Effect.as(Effect.forkDetach(refreshMembers(answered)), answer)
            },
            // The key does not allow this: every server would say the same, so the caller hears it now.
            onFailure: (error) =>
              error._tag === "PermissionDenied"
                ? Effect.fail(error)
                : abandoned
                  ? Effect.fail(timeoutOf(what))
                  : moveOn(target, undefined),
          },
        )
      }
      const moveOn = (
        target: number,
        reply: WrongLeaderReply | undefined,
      ): Effect.Effect<Exclude<Res, WrongLeaderReply>, Timeout | PermissionDenied> => {
        if (leader === target) {
          // A leader the list does not name yet (a member added since the client started) is learned.
          if (reply !== undefined) learn(reply.leaderHint)
          const hint = reply === undefined ? -1 : servers.indexOf(reply.leaderHint)
          leader = hint >= 0 && hint !== target ? hint : (target + 1) % servers.length
        }
        // After a full round without a leader, back off briefly: an election is likely under way.
        if (++tried % servers.length === 0) {
          return Effect.flatMap(Effect.sleep(Duration.millis(20 + random.nextDoubleUnsafe() * 80)), attempt)
        }
        return attempt()
      }
      return attempt()
    })

  return {
    get servers() {
      return servers
    },
    call,
    setServers(next) {
      const current = servers[leader % Math.max(1, servers.length)]
      servers = [...next]
      const at = current === undefined ? -1 : servers.indexOf(current)
      leader = Math.max(at, 0)
    },
  }
}
