/**
 * Replacing a member the safe way (thesis §4.2.1; etcd's learner-first procedure): add the new one as
 * a learner, wait until it has caught up, promote it, remove the old one. Every step is decided from
 * the membership read afresh, so an interrupted replace continues from where the group stands.
 */
import { UnknownMember } from "@kv/raft"
import { Clock, Duration, Effect, Schema } from "effect"
import { monotonicMs } from "../commandClock.ts"
import type { MemberChangeFailure, MemberClientShape } from "./client.ts"
import type { MemberInfo } from "./protocol.ts"

/** One step of `replace`, as it happens. */
export type ReplaceProgress =
  | { readonly step: "adding"; readonly id: number; readonly address: string }
  | { readonly step: "catching-up"; readonly id: number; readonly lag: number; readonly match: number }
  | { readonly step: "promoting"; readonly id: number }
  | { readonly step: "removing"; readonly id: number }
  /** Another change is in flight or the leader changed: the membership is read again. */
  | { readonly step: "waiting"; readonly reason: string }
  | { readonly step: "done"; readonly members: readonly MemberInfo[] }

export interface ReplaceOptions {
  readonly onProgress?: (progress: ReplaceProgress) => void
  /** The new member counts as caught up when it is at most this many entries behind the leader... Default 100. */
  readonly maxLag?: number
  /** ...in this many consecutive reads of the membership, `pollMs` apart. Default 3. */
  readonly steadyReads?: number
  readonly pollMs?: number
  /** Give up (with `CatchUpTimeout`) when the new member has not caught up in this long. Default 10 minutes. */
  readonly catchUpTimeoutMs?: number
}

/** The new member did not catch up in time: is it running, with `--join`, at the address it was added with? */
export class CatchUpTimeout extends Schema.TaggedError<CatchUpTimeout>()("CatchUpTimeout", {
  id: Schema.Number,
  lag: Schema.Number,
  afterMs: Schema.Number,
}) {
  override get message(): string {
    return (
      `member ${this.id} did not catch up within ${this.afterMs} ms (${this.lag < 0 ? "nothing received" : `${this.lag} entries behind`}): ` +
      "is it running (started with --join at the address it was added with)? Run replace again to continue"
    )
  }
}

/** The member the replacement names already exists with another address. */
export class MemberAddressMismatch extends Schema.TaggedError<MemberAddressMismatch>()("MemberAddressMismatch", {
  id: Schema.Number,
  address: Schema.String,
  expected: Schema.String,
}) {
  override get message(): string {
    return `member ${this.id} is a member at ${this.address}, not ${this.expected}`
  }
}

export type ReplaceError = MemberChangeFailure | CatchUpTimeout | MemberAddressMismatch

/** A change the membership may have overtaken: read it again and decide anew. */
const isTransient = (e: { readonly _tag: string }): boolean =>
  e._tag === "ChangeInProgress" || e._tag === "NotLeader" || e._tag === "AlreadyMember" || e._tag === "UnknownMember"

const describeTransient = (e: { readonly _tag: string }): string =>
  e._tag === "ChangeInProgress"
    ? "another membership change is committing"
    : e._tag === "NotLeader"
      ? "the leader changed during the change; reading the membership again"
      : "the membership changed meanwhile; reading it again"

/**
 * Replaces member `oldId` by `next` (see the module comment). Transient refusals (another change
 * committing, a leader change) are waited out; the others fail.
 */
export const replaceMember = (
  client: MemberClientShape,
  oldId: number,
  next: { readonly id: number; readonly address: string },
  options: ReplaceOptions = {},
): Effect.Effect<readonly MemberInfo[], ReplaceError> =>
  Effect.gen(function* () {
    const report = options.onProgress ?? (() => {})
    const maxLag = options.maxLag ?? 100
    const steadyReads = options.steadyReads ?? 3
    const pollMs = options.pollMs ?? 200
    const catchUpTimeoutMs = options.catchUpTimeoutMs ?? 600_000
    const clock = yield* Clock.Clock
    const now = () => monotonicMs(clock)
    let steady = 0
    let catchUpSince: number | undefined
    const attempt = (change: Effect.Effect<unknown, MemberChangeFailure>) =>
      change.pipe(
        Effect.asVoid,
        Effect.catchIf(isTransient, (e) =>
          Effect.sync(() => report({ step: "waiting", reason: describeTransient(e) })).pipe(
            Effect.andThen(Effect.sleep(Duration.millis(100))),
          ),
        ),
      )
    while (true) {
      const list = yield* client.list()
      const old = list.members.find((m) => m.id === oldId)
      const added = list.members.find((m) => m.id === next.id)
      if (added === undefined) {
        // Nothing of this replacement has happened yet (or the old one is gone without it).
        if (old === undefined) return yield* new UnknownMember({ id: oldId })
        report({ step: "adding", id: next.id, address: next.address })
        yield* attempt(client.change("add-learner", next.id, next.address))
        continue
      }
      if (added.address !== "" && added.address !== next.address) {
        return yield* new MemberAddressMismatch({ id: next.id, address: added.address, expected: next.address })
      }
      if (added.role === "learner") {
        catchUpSince ??= now()
        report({ step: "catching-up", id: next.id, lag: added.lag, match: added.match })
        steady = added.match > 0 && added.lag >= 0 && added.lag <= maxLag ? steady + 1 : 0
        if (steady >= steadyReads) {
          report({ step: "promoting", id: next.id })
          yield* attempt(client.change("promote", next.id))
          steady = 0
          continue
        }
        if (now() - catchUpSince >= catchUpTimeoutMs) {
          return yield* new CatchUpTimeout({
            id: next.id,
            lag: added.match > 0 ? added.lag : -1,
            afterMs: catchUpTimeoutMs,
          })
        }
        yield* Effect.sleep(Duration.millis(pollMs))
        continue
      }
      if (old !== undefined) {
        report({ step: "removing", id: oldId })
        yield* attempt(client.change("remove", oldId))
        continue
      }
      report({ step: "done", members: list.members })
      return list.members
    }
  })
