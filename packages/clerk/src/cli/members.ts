import type { MemberList, ReplaceProgress } from "@kv/kvraft"
import { ExitCode } from "./exitCodes.ts"
import { CliFailure } from "./session.ts"
import { renderTable } from "./table.ts"

/** The group a `kv admin member` command acts on, from its flags. */
export type GroupChoice = "kvraft" | "controller" | { readonly gid: number }

export const groupName = (group: GroupChoice): string =>
  group === "kvraft" ? "the kvraft group" : group === "controller" ? "the controller" : `group ${group.gid}`

/** How to start a new member of this group, for messages that say what to do next. */
export const serveCommand = (group: GroupChoice, id: number, address: string): string => {
  const program = group === "kvraft" ? "kvraft" : group === "controller" ? "shardctrler" : `shardkv --gid ${group.gid}`
  return `bun run ${program} --join --id ${id} --address ${address}`
}

export const adminCommand = (group: GroupChoice): string =>
  group === "kvraft"
    ? "kv admin member"
    : group === "controller"
      ? "kv admin member --controller"
      : `kv admin member --gid ${group.gid}`

export const renderMembers = (group: GroupChoice, list: MemberList): string => {
  const rows = list.members.map((m) => [
    String(m.id),
    m.address,
    m.role,
    m.match < 0 ? "" : String(m.match),
    m.lag < 0 ? "" : String(m.lag),
  ])
  const table = renderTable(["id", "address", "role", "match", "lag"], rows)
  return `${groupName(group)}: leader ${list.leader}, term ${list.term}, configuration at index ${list.membershipIndex}\n${table}`
}

/** One line per replace step; catching-up lines only when the lag has changed. */
export const progressPrinter = (group: GroupChoice, write: (line: string) => void) => {
  let lastLag: number | undefined
  return (p: ReplaceProgress): void => {
    switch (p.step) {
      case "adding":
        write(`adding member ${p.id} (${p.address}) as a learner`)
        return
      case "catching-up": {
        if (p.lag === lastLag) return
        lastLag = p.lag
        write(
          p.match > 0
            ? `member ${p.id} catching up: ${p.lag} entries behind`
            : `member ${p.id} has received nothing yet (is it running? \`${serveCommand(group, p.id, "HOST:PORT")}\`)`,
        )
        return
      }
      case "promoting":
        write(`member ${p.id} caught up; promoting it to voter`)
        return
      case "removing":
        write(`removing member ${p.id}`)
        return
      case "waiting":
        write(`waiting: ${p.reason}`)
        return
      case "done":
        write(`done: members ${p.members.map((m) => `${m.id} (${m.role})`).join(", ")}`)
        return
    }
  }
}

/** The member admin's typed errors as the CLI's messages and exit codes; undefined for others. */
export const classifyMemberError = (error: unknown, group: GroupChoice): CliFailure | undefined => {
  const e = error as { readonly _tag?: unknown; readonly [k: string]: unknown } | null
  const admin = adminCommand(group)
  switch (e?._tag) {
    case "NotLeader":
      return new CliFailure(
        `the leader changed before the change committed: it may or may not have taken effect; run \`${admin} list\` and retry if needed`,
        ExitCode.unreachable,
      )
    case "ChangeInProgress":
      return new CliFailure(
        `another membership change is committing (entry ${e.index}); retry once it has (one change at a time)`,
        ExitCode.rejected,
      )
    case "UnknownMember":
      return new CliFailure(`${e.id} is not a member of ${groupName(group)} (see \`${admin} list\`)`, ExitCode.rejected)
    case "AlreadyMember":
      return new CliFailure(`member ${e.id} is already a ${e.role} of ${groupName(group)}`, ExitCode.rejected)
    case "LastVoter":
      return new CliFailure(
        `member ${e.id} is the last voter: a group without voters can never elect a leader`,
        ExitCode.rejected,
      )
    case "IdUsedBefore":
      return new CliFailure(
        `member id ${e.id} was used before in ${groupName(group)}: ids are single-use, give the new member a new id`,
        ExitCode.rejected,
      )
    case "BadMemberAddress":
    case "MemberAddressMismatch":
      return new CliFailure(String((error as Error).message), ExitCode.rejected)
    case "CatchUpTimeout":
      return new CliFailure(String((error as Error).message), ExitCode.unreachable)
    default:
      return undefined
  }
}
