import {
  type MemberStatus,
  type MembershipChangeError,
  type MembershipChangeResult,
  type NodeId,
  NotLeader,
  type RaftNodeShape,
} from "@kv/raft"
import { parseAddress, type RpcNodeShape } from "@kv/rpc"
import { Duration, Effect } from "effect"
import type { WrongLeader } from "../rsm/errors.ts"
import type { MemberRecordView } from "../rsm/memberRecord.ts"
import {
  MemberChangeMethod,
  type MemberChangeReply,
  type MemberChangeRequest,
  type MemberInfo,
  MemberListMethod,
  type MemberListReply,
} from "./protocol.ts"

export interface MemberAdminOptions {
  readonly raft: RaftNodeShape
  readonly record: MemberRecordView
  /** Commits a record entry naming these members (before a removal drops one from every later configuration). */
  readonly recordNamed: (ids: readonly number[]) => Effect.Effect<void, WrongLeader>
  /** Ids of the bootstrap members (cluster.toml): used, whatever the log says. */
  readonly bootstrapIds: readonly number[]
  /** Runs `f` once the state machine has applied everything committed before the call (ReadIndex). */
  readonly read: <A>(f: () => A) => Effect.Effect<A, WrongLeader>
}

/** How long a change may wait for its configuration entry to commit before the answer is "unknown". */
const CHANGE_COMMIT_TIMEOUT_MS = 8_000

/** The address a replica knows for a member id, "" when none. */
export const memberAddress = (raft: RaftNodeShape, id: number): string =>
  raft.status().members.find((m) => m.id === id)?.address ?? ""

const infoOf = (members: readonly MemberStatus[]): MemberInfo[] =>
  members.map((m) => ({ id: m.id, address: m.address, role: m.role, match: m.match, lag: m.lag }))

/**
 * Serves the member admin protocol for one replica. Copies of a change request (a client resends
 * while the entry commits) wait for the first one's answer instead of proposing again.
 */
export const serveMemberAdmin = (rpc: RpcNodeShape, options: MemberAdminOptions): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    const run = Effect.runForkWith(fiber.context)
    const { raft, record } = options
    const wrongLeader = (leader: number) =>
      ({ ok: false, error: "WrongLeader", leaderHint: memberAddress(raft, leader) }) as const

    rpc.handle(MemberListMethod, (request): MemberListReply => {
      const s = raft.status()
      if (request.leaderOnly && s.role !== "leader") return wrongLeader(s.leader)
      return {
        ok: true,
        id: s.id,
        self: s.member,
        leader: s.leader,
        term: s.term,
        commitIndex: s.commitIndex,
        membershipIndex: s.membershipIndex,
        members: infoOf(s.members),
        named: [...record.named].sort((a, b) => a - b),
        heldData: [...record.heldData].sort((a, b) => a - b),
      }
    })

    const usedBefore = (id: number): boolean =>
      record.named.has(id) || record.heldData.has(id) || options.bootstrapIds.includes(id)

    const perform = (request: MemberChangeRequest): Effect.Effect<MemberChangeReply> => {
      const id = request.id as NodeId
      const proposed: Effect.Effect<MembershipChangeResult, MembershipChangeError> =
        request.change === "add-learner"
          ? raft.addLearner(id, request.address)
          : request.change === "add-voter"
            ? raft.addVoter(id, request.address)
            : request.change === "promote"
              ? raft.promote(id)
              : raft.removeMember(id)
      const adding = request.change === "add-learner" || request.change === "add-voter"
      // Whether the id was ever named is only known once everything committed has been applied.
      const checked = adding
        ? options.read(() => {
            const current = raft.status().members.some((m) => m.id === id)
            return !current && usedBefore(id)
          })
        : request.change === "remove" && !record.named.has(id) && raft.status().members.some((m) => m.id === id)
          ? options.recordNamed([id]).pipe(Effect.as(false))
          : Effect.succeed(false)
      return checked.pipe(
        Effect.flatMap((used): Effect.Effect<MemberChangeReply, MembershipChangeError> => {
          if (used) return Effect.succeed({ ok: false, error: "IdUsedBefore", id } as const)
          return proposed.pipe(
            Effect.timeoutOrElse({
              duration: Duration.millis(CHANGE_COMMIT_TIMEOUT_MS),
              orElse: () => Effect.fail(new NotLeader({ leaderHint: raft.status().leader })),
            }),
            Effect.map((done) => ({ ok: true, index: done.index, members: infoOf(raft.status().members) }) as const),
          )
        }),
        Effect.catch((error: MembershipChangeError | WrongLeader): Effect.Effect<MemberChangeReply> => {
          switch (error._tag) {
            case "WrongLeader":
              return Effect.succeed(wrongLeader(error.leaderHint))
            case "NotLeader":
              return Effect.succeed({
                ok: false,
                error: "NotLeader",
                leaderHint: memberAddress(raft, error.leaderHint),
                leaderId: error.leaderHint,
              } as const)
            case "NodeStopped":
              return Effect.succeed(wrongLeader(0))
            case "ChangeInProgress":
              return Effect.succeed({ ok: false, error: "ChangeInProgress", index: error.index } as const)
            case "UnknownMember":
            case "LastVoter":
              return Effect.succeed({ ok: false, error: error._tag, id } as const)
            case "AlreadyMember":
              return Effect.succeed({ ok: false, error: "AlreadyMember", id, role: error.role } as const)
          }
        }),
      )
    }

    const inFlight = new Map<string, ((reply: MemberChangeReply) => void)[]>()
    rpc.handleWith(MemberChangeMethod, (request, _from, reply: (reply: MemberChangeReply) => void) => {
      const s = raft.status()
      if (s.role !== "leader") return reply(wrongLeader(s.leader))
      if ((request.change === "add-learner" || request.change === "add-voter") && !validAddress(request.address)) {
        return reply({
          ok: false,
          error: "BadAddress",
          message: `not a host:port address: ${JSON.stringify(request.address)}`,
        })
      }
      const key = `${request.change}:${request.id}:${request.address}`
      const waiting = inFlight.get(key)
      if (waiting !== undefined) {
        waiting.push(reply)
        return
      }
      const replies = [reply]
      inFlight.set(key, replies)
      run(
        perform(request).pipe(
          Effect.tap((answer) =>
            Effect.sync(() => {
              inFlight.delete(key)
              for (const r of replies) r(answer)
            }),
          ),
        ),
      )
    })
    return Effect.void
  })

const validAddress = (address: string): boolean => {
  const hp = parseAddress(address)
  return hp !== undefined && hp.port > 0
}
