/**
 * What a replica with an empty data directory asks its group before it starts: whether the group
 * already exists and what it knows of this replica's id (see docs/operations.md).
 */
import { existsSync, readdirSync } from "node:fs"
import type { RpcNodeShape } from "@kv/rpc"
import { Effect } from "effect"
import { type MemberList, MemberListMethod } from "../members/protocol.ts"

/** How long a starting replica waits for its peers' answers; silence means a new group. */
export const PROBE_DEADLINE_MS = 800

/** Whether Raft storage at `dir` holds nothing (missing or empty): a first start, or lost data. */
export const isEmptyDataDir = (dir: string): boolean => !existsSync(dir) || readdirSync(dir).length === 0

/**
 * Every answer within the deadline from `addresses`, then from the members those answers name that
 * were not asked yet (the configured replicas may be stale, removed or gone; the members they name
 * know the group's present). `self` is never asked.
 */
export const askGroup = (rpc: RpcNodeShape, addresses: readonly string[], self: string): Effect.Effect<MemberList[]> =>
  Effect.gen(function* () {
    const asked = new Set([self])
    const ask = (targets: readonly string[]) => {
      const fresh = [...new Set(targets)].filter((a) => a !== "" && !asked.has(a))
      for (const a of fresh) asked.add(a)
      return Effect.forEach(
        fresh,
        (address) =>
          rpc
            .call(
              address,
              MemberListMethod,
              { leaderOnly: false },
              { attemptTimeoutMs: 200, deadlineMs: PROBE_DEADLINE_MS },
            )
            .pipe(Effect.option),
        { concurrency: "unbounded" },
      ).pipe(Effect.map((replies) => replies.flatMap((r) => (r._tag === "Some" && r.value.ok ? [r.value] : []))))
    }
    const first = yield* ask(addresses)
    const second = yield* ask(first.flatMap((a) => a.members.map((m) => m.address)))
    return [...first, ...second]
  })

/** The answer that knows the most recent membership (the leader's when it answered). */
export const freshest = (answers: readonly MemberList[]): MemberList | undefined =>
  [...answers].sort(
    (a, b) =>
      b.membershipIndex - a.membershipIndex ||
      Number(b.leader === b.id) - Number(a.leader === a.id) ||
      b.commitIndex - a.commitIndex,
  )[0]

/** How an operator runs and administers this service, for messages that say what to do. */
export const commandsFor = (service: string): { readonly serve: string; readonly admin: string } => {
  if (service === "controller") return { serve: "bun run shardctrler", admin: "bun run kv admin member --controller" }
  const gid = /^group-(\d+)$/.exec(service)?.[1]
  if (gid !== undefined) return { serve: `bun run shardkv --gid ${gid}`, admin: `bun run kv admin member --gid ${gid}` }
  return { serve: `bun run ${service}`, admin: "bun run kv admin member" }
}

/** An id no answer has seen used: one more than the highest. */
export const unusedId = (answers: readonly MemberList[], bootstrapIds: readonly number[]): number =>
  Math.max(0, ...bootstrapIds, ...answers.flatMap((a) => [...a.named, ...a.heldData, ...a.members.map((m) => m.id)])) +
  1

/**
 * Why a replica with an empty data directory must not start under `id`, or undefined. It must not
 * if the group has seen this id acknowledge log entries (its data is lost: Raft's safety relies on
 * what it acknowledged and voted), or if the id was a member once and no longer is (removed).
 */
export const lostIdentityProblem = (
  service: string,
  id: number,
  answers: readonly MemberList[],
  bootstrapIds: readonly number[],
): string | undefined => {
  const held = answers.find((a) => a.heldData.includes(id))
  const latest = freshest(answers)
  // Whether the id is a member now, by the leader's log if a leader answered (it holds every
  // committed change, and a change in progress too); a restarted replica's stale, never committed
  // configuration may look newer, and a lagging one may still list a removed member. Without a
  // leader's answer, any replica that still lists it counts.
  const leaderView = answers.find((a) => a.leader === a.id)
  const listed =
    leaderView !== undefined
      ? leaderView.members.some((m) => m.id === id)
      : answers.some((a) => a.members.some((m) => m.id === id))
  const removed =
    latest !== undefined && !listed && answers.some((a) => a.named.includes(id) || a.heldData.includes(id))
  if (held === undefined && !removed) return undefined
  const { serve, admin } = commandsFor(service)
  const next = unusedId(answers, bootstrapIds)
  const why =
    held !== undefined && !removed
      ? `the group already exists and holds log entries that member ${id} acknowledged (it lost them with its data)`
      : `member ${id} was removed from the group`
  const then = removed
    ? `\`${admin} add ${next} HOST:PORT\` and, once it has caught up, \`${admin} promote ${next}\``
    : `\`${admin} replace ${id} ${next} HOST:PORT\``
  return (
    `its data directory is empty, but ${why}. Starting it again under id ${id} could lose acknowledged writes, ` +
    "so it refuses to start. Member ids are single-use: start a new member instead, on the new machine " +
    `\`${serve} --join --id ${next} --address HOST:PORT\`, then ${then} ` +
    '(see docs/operations.md, "Replacing a member"). ' +
    "If the whole group is being created anew, stop every replica and empty every data directory first."
  )
}
