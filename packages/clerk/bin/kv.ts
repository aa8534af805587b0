/**
 * The kv command line: `bun run kv get|put|append|delete|cas|txn|list|watch|lease|lock|admin|status ...`;
 * `kv admin member ...` manages the members of the kvraft group, the controller (--controller) or a
 * shard group (--gid N).
 * Exit codes: 0 ok, 1 key (or lease) not found, 2 bad input, 3 cluster unreachable (timeout),
 * 4 request refused, 5 a condition did not hold (a conditional write not applied, a transaction's
 * failure branch, a lock not taken within --wait-ms), 6 a watch compacted, 7 a lease lost.
 */
import { cliEnvironment, replaceMember } from "@kv/kvraft"
import { Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { action, type Common, common, print } from "../src/cli/command.ts"
import { append, cas, del, get, list, put, txn } from "../src/cli/dataCommands.ts"
import { ExitCode } from "../src/cli/exitCodes.ts"
import { lease } from "../src/cli/leaseCommands.ts"
import { lock } from "../src/cli/lockCommand.ts"
import {
  adminCommand,
  classifyMemberError,
  type GroupChoice,
  groupName,
  progressPrinter,
  renderMembers,
  serveCommand,
} from "../src/cli/members.ts"
import { CliFailure, type CliSession } from "../src/cli/session.ts"
import { collectStatus, renderStatus } from "../src/cli/status.ts"
import { withWaitIndicator } from "../src/cli/waitIndicator.ts"
import { watch } from "../src/cli/watchCommand.ts"

const gid = Argument.Int("gid").pipe(Argument.withDescription("group id"))

const join = Command.make(
  "join",
  { ...common, gid },
  action(async (session, flags) => {
    const group = session.config.groups.get(flags.gid)
    if (group === undefined) {
      throw new CliFailure(`group ${flags.gid} is not in ${session.config.source}`, ExitCode.badInput)
    }
    const admin = await session.controllerClient()
    await withWaitIndicator("the controller", () => session.run(admin.join({ [String(flags.gid)]: group.replicas })))
    print(flags, `group ${flags.gid} joined`, { ok: true })
    return ExitCode.ok
  }),
).pipe(Command.withDescription("Add a group (its replicas come from the config file) and rebalance shards"))

const leave = Command.make(
  "leave",
  {
    ...common,
    gid,
    force: Flag.Boolean("force").pipe(
      Flag.withDescription("let the last group leave (nothing is served until a group joins)"),
      Flag.withDefault(false),
    ),
  },
  action(async (session, flags) => {
    const admin = await session.controllerClient()
    const latest = await withWaitIndicator("the controller", () => session.run(admin.query(-1)))
    const others = Object.keys(latest.groups).filter((g) => g !== String(flags.gid))
    if (others.length === 0 && String(flags.gid) in latest.groups && !flags.force) {
      throw new CliFailure(
        `group ${flags.gid} is the last group: after it leaves no group serves any shard, and every ` +
          "key is unreachable (kept, frozen, by this group) until a group joins. Join another group " +
          "first (`kv admin join GID`), or run again with --force",
        ExitCode.rejected,
      )
    }
    await withWaitIndicator("the controller", () => session.run(admin.leave([flags.gid])))
    const note = others.length === 0 ? "; no group serves now: its shards stay parked until a group joins" : ""
    print(flags, `group ${flags.gid} left${note}`, { ok: true })
    return ExitCode.ok
  }),
).pipe(Command.withDescription("Remove a group; its shards move to the others (the last one needs --force)"))

const move = Command.make(
  "move",
  { ...common, shard: Argument.Int("shard").pipe(Argument.withDescription("shard number")), gid },
  action(async (session, flags) => {
    const admin = await session.controllerClient()
    await withWaitIndicator("the controller", () => session.run(admin.move(flags.shard, flags.gid)))
    print(flags, `shard ${flags.shard} assigned to group ${flags.gid}`, { ok: true })
    return ExitCode.ok
  }),
).pipe(Command.withDescription("Assign one shard to a group"))

const query = Command.make(
  "query",
  {
    ...common,
    num: Argument.Int("num").pipe(
      Argument.withDescription("configuration number (-1: latest)"),
      Argument.withDefault(-1),
    ),
  },
  action(async (session, flags) => {
    const admin = await session.controllerClient()
    const config = await withWaitIndicator("the controller", () => session.run(admin.query(flags.num)))
    const groups = Object.entries(config.groups)
      .map(([g, servers]) => `  group ${g}: ${servers.join(", ")}`)
      .join("\n")
    print(flags, `configuration #${config.num}\nshards: ${config.shards.join(" ")}\n${groups}`, config)
    return ExitCode.ok
  }),
).pipe(Command.withDescription("Show a shard configuration"))

const groupFlags = {
  ...common,
  controller: Flag.Boolean("controller").pipe(
    Flag.withDescription("act on the shard controller's group"),
    Flag.withDefault(false),
  ),
  gid: Flag.Int("gid").pipe(Flag.withDescription("act on shard group GID"), Flag.optional),
}
type GroupFlags = Common & { readonly controller: boolean; readonly gid: Option.Option<number> }

const groupOf = (flags: GroupFlags): GroupChoice => {
  if (flags.controller && Option.isSome(flags.gid)) {
    throw new CliFailure("--controller and --gid name different groups: give one", ExitCode.badInput)
  }
  if (flags.controller) return "controller"
  if (Option.isSome(flags.gid)) return { gid: flags.gid.value }
  return "kvraft"
}

/** A member command: its group from the flags, the member admin's errors as messages and exit codes. */
const memberAction = <F extends GroupFlags>(
  body: (session: CliSession, flags: F, group: GroupChoice) => Promise<number>,
) =>
  action<F>(async (session, flags) => {
    const group = groupOf(flags)
    try {
      return await body(session, flags, group)
    } catch (error) {
      throw classifyMemberError(error, group) ?? error
    }
  })

const memberId = (name: string, description: string) => Argument.Int(name).pipe(Argument.withDescription(description))
const memberAddress = Argument.String("address").pipe(Argument.withDescription("the new member's host:port"))

const memberList = Command.make(
  "list",
  groupFlags,
  memberAction(async (session, flags, group) => {
    const members = await session.memberClient(group)
    const list = await withWaitIndicator("a leader", () => session.run(members.list()))
    print(flags, renderMembers(group, list), list)
    return ExitCode.ok
  }),
).pipe(Command.withDescription("The group's members: id, address, role (leader, voter, learner), match and lag"))

const memberAdd = Command.make(
  "add",
  {
    ...groupFlags,
    id: memberId("id", "the new member's id (never used in the group before)"),
    address: memberAddress,
    voter: Flag.Boolean("voter").pipe(
      Flag.withDescription(
        "add a voter at once instead of a learner (it counts toward every commit before it has the log)",
      ),
      Flag.withDefault(false),
    ),
  },
  memberAction(async (session, flags, group) => {
    const members = await session.memberClient(group)
    const list = await withWaitIndicator("the change to commit", () =>
      session.run(members.change(flags.voter ? "add-voter" : "add-learner", flags.id, flags.address)),
    )
    const next = flags.voter
      ? ""
      : `; promote it once it has caught up (\`${adminCommand(group)} promote ${flags.id}\`, lag in \`${adminCommand(group)} list\`)`
    print(
      flags,
      `member ${flags.id} added to ${groupName(group)} as a ${flags.voter ? "voter" : "learner"} at ${flags.address}; ` +
        `start it there with \`${serveCommand(group, flags.id, flags.address)}\` if it is not running${next}`,
      { ok: true, members: list },
    )
    return ExitCode.ok
  }),
).pipe(Command.withDescription("Add a new member, as a learner (default) or a voter"))

const memberPromote = Command.make(
  "promote",
  { ...groupFlags, id: memberId("id", "the learner to make a voter") },
  memberAction(async (session, flags, group) => {
    const members = await session.memberClient(group)
    const list = await withWaitIndicator("the change to commit", () => session.run(members.change("promote", flags.id)))
    print(flags, `member ${flags.id} is a voter of ${groupName(group)}`, { ok: true, members: list })
    return ExitCode.ok
  }),
).pipe(Command.withDescription("Make a learner a voter (once it has caught up: see its lag in list)"))

const memberRemove = Command.make(
  "remove",
  { ...groupFlags, id: memberId("id", "the member to remove") },
  memberAction(async (session, flags, group) => {
    const members = await session.memberClient(group)
    const list = await withWaitIndicator("the change to commit", () => session.run(members.change("remove", flags.id)))
    print(
      flags,
      `member ${flags.id} removed from ${groupName(group)}; its process can be stopped (its id is never used again)`,
      { ok: true, members: list },
    )
    return ExitCode.ok
  }),
).pipe(Command.withDescription("Remove a member (the leader hands leadership over first)"))

const memberReplace = Command.make(
  "replace",
  {
    ...groupFlags,
    old: memberId("old-id", "the member to replace"),
    id: memberId("new-id", "the new member's id (never used in the group before)"),
    address: memberAddress,
    catchUpTimeoutMs: Flag.Int("catch-up-timeout-ms").pipe(
      Flag.withDescription("give up when the new member has not caught up in this long (run again to continue)"),
      Flag.withDefault(600_000),
    ),
  },
  memberAction(async (session, flags, group) => {
    const members = await session.memberClient(group)
    const say = progressPrinter(group, (line) => (flags.json ? console.error(line) : console.log(line)))
    const list = await session.run(
      replaceMember(
        members,
        flags.old,
        { id: flags.id, address: flags.address },
        {
          onProgress: say,
          catchUpTimeoutMs: flags.catchUpTimeoutMs,
        },
      ),
    )
    if (flags.json) console.log(JSON.stringify({ ok: true, members: list }))
    return ExitCode.ok
  }),
).pipe(
  Command.withDescription(
    "Replace a member: add the new one as a learner, wait until it has caught up, promote it, remove the old one (run again to continue an interrupted replace)",
  ),
)

const member = Command.make("member").pipe(
  Command.withDescription("Members of a Raft group: the kvraft group (default), --controller, or shard group --gid N"),
  Command.withSubcommands([memberList, memberAdd, memberPromote, memberRemove, memberReplace]),
)

const admin = Command.make("admin").pipe(
  Command.withDescription("Manage groups and shards through the shard controller, and the members of any group"),
  Command.withSubcommands([join, leave, move, query, member]),
)

const status = Command.make(
  "status",
  common,
  action(async (session, flags) => {
    const s = await collectStatus(session)
    print(flags, renderStatus(s), s)
    // A replica the leader no longer names (removed, replaced) may be down for good.
    return s.replicas.every((r) => r.up || r.member === "removed") ? ExitCode.ok : ExitCode.unreachable
  }),
).pipe(Command.withDescription("Every group's replicas (up or down), leader, term, indexes, sizes and shards"))

const kv = Command.make("kv").pipe(
  Command.withDescription("kv: a linearizable key/value store on Raft"),
  Command.withSubcommands([get, put, append, del, cas, txn, list, watch, lease, lock, admin, status]),
)

Command.run(kv, { version: "0.1.0" })
  .pipe(Effect.provide(cliEnvironment), Effect.runPromise)
  .catch(() => {
    process.exitCode = ExitCode.badInput
  })
