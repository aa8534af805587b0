import { AlreadyMember, ChangeInProgress, LastVoter, NotLeader, UnknownMember } from "@kv/raft"
import type { PermissionDenied, RpcNodeShape } from "@kv/rpc"
import { Clock, Duration, Effect, Option } from "effect"
import { Timeout } from "../client/errors.ts"
import { makeLeaderCaller } from "../client/leaderCaller.ts"
import { monotonicMs } from "../commandClock.ts"
import { BadMemberAddress, IdUsedBefore } from "./errors.ts"
import {
  type MemberChangeKind,
  MemberChangeMethod,
  type MemberChangeReply,
  type MemberInfo,
  type MemberList,
  MemberListMethod,
} from "./protocol.ts"

/** Every way a membership change can fail, as seen by a client. */
export type MemberChangeFailure =
  | NotLeader
  | ChangeInProgress
  | UnknownMember
  | AlreadyMember
  | LastVoter
  | IdUsedBefore
  | BadMemberAddress
  | Timeout
  | PermissionDenied

export interface MemberClientOptions {
  /** Addresses of the group's replicas known so far; the members the group names are added as they are learned. */
  readonly servers: readonly string[]
  /** Overall bound of one operation (a change waits for its entry to commit). Default 30 s. */
  readonly deadlineMs?: number
}

export interface MemberClientShape {
  /** The group's members as its leader sees them (role, match, lag). */
  list(): Effect.Effect<MemberList, Timeout | PermissionDenied>
  /** The same from any replica that answers, leader or not (match and lag -1 unless it leads). */
  listAny(): Effect.Effect<MemberList, Timeout | PermissionDenied>
  change(
    kind: MemberChangeKind,
    id: number,
    address?: string,
  ): Effect.Effect<readonly MemberInfo[], MemberChangeFailure>
  /** Addresses the client knows for the group: the configured ones and every member's it has learned. */
  readonly servers: () => readonly string[]
}

/**
 * The low-level member admin client of one Raft group (kvraft, the shard controller or a shard
 * group). Lists go to the leader through the usual leader-following caller. A change is sent to the
 * leader and waits there for its configuration entry to commit; copies of it the client resends in
 * the meantime join the first one at the server.
 */
export const makeMemberClient = (rpc: RpcNodeShape, options: MemberClientOptions): Effect.Effect<MemberClientShape> =>
  Effect.sync(() => {
    const deadlineMs = options.deadlineMs ?? 30_000
    const caller = makeLeaderCaller(rpc, options.servers, { deadlineMs, perServerMs: 1_000 })
    const anyCaller = makeLeaderCaller(rpc, options.servers, { deadlineMs, perServerMs: 1_000 })
    const learn = (list: MemberList) => {
      const known = new Set(caller.servers)
      const fresh = list.members.map((m) => m.address).filter((a) => a !== "" && !known.has(a))
      if (fresh.length > 0) caller.setServers([...caller.servers, ...fresh])
    }
    const list = (leaderOnly: boolean) =>
      (leaderOnly ? caller : anyCaller)
        .call(MemberListMethod, () => ({ leaderOnly }), { operation: "member list", key: "" })
        .pipe(Effect.tap((reply) => Effect.sync(() => learn(reply))))

    const change = (
      kind: MemberChangeKind,
      id: number,
      address = "",
    ): Effect.Effect<readonly MemberInfo[], MemberChangeFailure> =>
      Effect.gen(function* () {
        const clock = yield* Clock.Clock
        const start = monotonicMs(clock)
        const what = `member ${kind} ${id}`
        while (true) {
          const remaining = deadlineMs - (monotonicMs(clock) - start)
          if (remaining <= 0) return yield* new Timeout({ operation: what, key: "", afterMs: deadlineMs })
          const leader = yield* list(true).pipe(
            Effect.map((l) => l.members.find((m) => m.role === "leader")?.address ?? ""),
          )
          if (leader === "") {
            yield* Effect.sleep(Duration.millis(50))
            continue
          }
          const reply = yield* rpc
            .call(
              leader,
              MemberChangeMethod,
              { change: kind, id, address },
              { attemptTimeoutMs: 300, deadlineMs: remaining },
            )
            .pipe(
              Effect.map(Option.some),
              // Refused for the key's role: nothing was changed, and no leader would change it.
              Effect.catchIf(
                (error) => error._tag !== "PermissionDenied",
                () => Effect.succeed(Option.none()),
              ),
            )
          if (reply._tag === "None") {
            // The leader went silent with the change perhaps made: only a fresh read can tell.
            return yield* new NotLeader({ leaderHint: 0 })
          }
          if (reply.value.ok) return reply.value.members
          if (reply.value.error === "WrongLeader") continue
          return yield* failureOf(reply.value)
        }
      })

    return {
      list: () => list(true),
      listAny: () => list(false),
      change,
      servers: () => caller.servers,
    }
  })

const failureOf = (reply: Exclude<MemberChangeReply, { readonly ok: true } | { readonly error: "WrongLeader" }>) => {
  switch (reply.error) {
    case "NotLeader":
      return new NotLeader({ leaderHint: reply.leaderId })
    case "ChangeInProgress":
      return new ChangeInProgress({ index: reply.index })
    case "UnknownMember":
      return new UnknownMember({ id: reply.id })
    case "LastVoter":
      return new LastVoter({ id: reply.id })
    case "IdUsedBefore":
      return new IdUsedBefore({ id: reply.id })
    case "AlreadyMember":
      return new AlreadyMember({ id: reply.id, role: reply.role })
    case "BadAddress":
      return new BadMemberAddress({ message: reply.message })
  }
}
