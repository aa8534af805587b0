import { MemberListMethod } from "@kv/kvraft"
import { RaftStatusMethod } from "@kv/raft"
import type { Config } from "@kv/shardctrler"
import { groupRpc, ShardKvStatusMethod } from "@kv/shardkv"
import { Effect } from "effect"
import type { CliSession } from "./session.ts"
import { formatBytes, renderTable } from "./table.ts"

export interface ReplicaStatus {
  readonly service: string
  /** Its index in the config's replicas; -1 for a member added later (not in the config). */
  readonly replica: number
  readonly address: string
  readonly up: boolean
  /** Its Raft id, when it answered or its group's leader names it. */
  readonly id?: number
  /** Its place in the group as the leader sees it: leader, voter or learner; "removed" when the leader does not name it. */
  readonly member?: string
  /** Entries it is behind the leader's log (from the leader). */
  readonly lag?: number
  readonly role?: string
  readonly term?: number
  readonly leader?: string
  readonly commitIndex?: number
  readonly appliedIndex?: number
  readonly raftStateBytes?: number
  readonly snapshotBytes?: number
}

/** What a group's leader says about its shards: which it serves and which are moving. */
export interface GroupShards {
  readonly configNum: number
  readonly serving: readonly number[]
  readonly pulling: readonly number[]
  readonly handingOff: readonly number[]
  /** Shards kept frozen after every group left them, until a group is given them. */
  readonly parked: readonly number[]
  /** Why the group refuses to take part (its gid is retired), or "". */
  readonly retired: string
  /** Its leader still restores the snapshot it started from: the shards above are not its own yet. */
  readonly restoring: boolean
}

export interface ClusterStatus {
  readonly replicas: readonly ReplicaStatus[]
  /** gid → the group leader's view of its shards (groups without a reachable leader are absent). */
  readonly groups: Readonly<Record<string, GroupShards>>
  /** gid → shards assigned to it in the controller's latest configuration. */
  readonly shards: Readonly<Record<string, readonly number[]>>
  readonly configNum: number | undefined
}

const services = (session: CliSession): [string, readonly string[]][] => {
  const out: [string, readonly string[]][] = []
  if (session.config.controller.replicas.length > 0) out.push(["controller", session.config.controller.replicas])
  for (const [gid, group] of session.config.groups) out.push([`group ${gid}`, group.replicas])
  if (session.config.kvraft !== undefined) out.push(["kvraft", session.config.kvraft.replicas])
  return out
}

/** The node to ask `service`'s replicas with: a shard group ("group <gid>") is asked in its own name. */
const rpcOf = (session: CliSession, service: string) =>
  service.startsWith("group ") ? groupRpc(session.rpc, Number(service.slice("group ".length))) : session.rpc

const probe = async (
  session: CliSession,
  service: string,
  address: string,
  replica: number,
  names: readonly string[],
) => {
  const reply = await session.run(
    rpcOf(session, service)
      .call(address, RaftStatusMethod, {}, { attemptTimeoutMs: 150, deadlineMs: 600 })
      .pipe(Effect.option),
  )
  if (reply._tag === "None") return { service, replica, address, up: false }
  const s = reply.value
  const leaderAddress = s.members.find((m) => m.id === s.leader)?.address
  return {
    service,
    replica,
    address,
    up: true,
    id: s.id,
    role: s.role,
    term: s.term,
    leader: s.leader === 0 ? "" : leaderAddress || (names[s.leader - 1] ?? `#${s.leader}`),
    commitIndex: s.commitIndex,
    appliedIndex: s.appliedIndex,
    raftStateBytes: s.raftStateBytes,
    snapshotBytes: s.snapshotBytes,
  }
}

/**
 * Each member's role and lag from its group's leader, and rows for members added since the config
 * was written (their addresses come from the leader's membership).
 */
const withMembers = async (session: CliSession, rows: readonly ReplicaStatus[]): Promise<ReplicaStatus[]> => {
  const out: ReplicaStatus[] = []
  const byService = new Map<string, ReplicaStatus[]>()
  for (const r of rows) byService.set(r.service, [...(byService.get(r.service) ?? []), r])
  for (const [service, replicas] of byService) {
    const ask = (address: string, leaderOnly: boolean) =>
      session.run(
        rpcOf(session, service)
          .call(address, MemberListMethod, { leaderOnly }, { attemptTimeoutMs: 150, deadlineMs: 600 })
          .pipe(Effect.option),
      )
    // The leader may be a member added after cluster.toml was written: then a listed replica says
    // where it is, and the leader is asked for lag as usual.
    let leaderAddress = replicas.find((r) => r.up && r.role === "leader")?.address
    if (leaderAddress === undefined) {
      const someone = replicas.find((r) => r.up)
      const view = someone === undefined ? undefined : await ask(someone.address, false)
      if (view?._tag === "Some" && view.value.ok) {
        const { leader, members } = view.value
        leaderAddress = members.find((m) => m.id === leader && m.address !== "")?.address
      }
    }
    const list = leaderAddress === undefined ? undefined : await ask(leaderAddress, true)
    const members = list?._tag === "Some" && list.value.ok ? list.value.members : undefined
    if (members === undefined) {
      out.push(...replicas)
      continue
    }
    const known = new Set(replicas.map((r) => r.address))
    const extra = await Promise.all(
      members
        .filter((m) => m.address !== "" && !known.has(m.address))
        .map((m) => probe(session, service, m.address, -1, [])),
    )
    for (const r of [...replicas, ...extra]) {
      const m = members.find((x) => x.address === r.address || (r.id !== undefined && x.id === r.id))
      out.push(
        m === undefined
          ? { ...r, member: "removed" }
          : { ...r, id: m.id, member: m.role, ...(m.lag >= 0 ? { lag: m.lag } : {}) },
      )
    }
  }
  return out
}

/** Asks every replica of every service for its Raft status; a replica that does not answer is down. */
export const collectStatus = async (session: CliSession): Promise<ClusterStatus> => {
  const probes = services(session).flatMap(([service, replicas]) =>
    replicas.map((address, replica): Promise<ReplicaStatus> => probe(session, service, address, replica, replicas)),
  )
  const replicas = await withMembers(session, await Promise.all(probes))
  let config: Config | undefined
  const controllerUp = replicas.some((r) => r.service === "controller" && r.up)
  if (controllerUp) {
    const controller = await session.controllerClient()
    const reply = await session.run(Effect.option(controller.query(-1).pipe(Effect.timeout(2_000))))
    if (reply._tag === "Some") config = reply.value
  }
  const groups: Record<string, GroupShards> = {}
  await Promise.all(
    replicas
      .filter((r) => r.up && r.role === "leader" && r.service.startsWith("group "))
      .map(async (r) => {
        const reply = await session.run(
          rpcOf(session, r.service)
            .call(r.address, ShardKvStatusMethod, {}, { attemptTimeoutMs: 150, deadlineMs: 600 })
            .pipe(Effect.option),
        )
        if (reply._tag === "None") return
        const states = reply.value.shards
        const where = (...wanted: string[]) => states.flatMap((state, shard) => (wanted.includes(state) ? [shard] : []))
        groups[r.service.slice("group ".length)] = {
          configNum: reply.value.configNum,
          serving: where("Serving", "AwaitingGc"),
          pulling: where("Pulling"),
          handingOff: where("HandingOff"),
          parked: where("Parked"),
          retired: reply.value.retired,
          restoring: reply.value.restoring === true,
        }
      }),
  )
  const shards: Record<string, number[]> = {}
  config?.shards.forEach((gid, shard) => {
    const list = shards[String(gid)] ?? []
    list.push(shard)
    shards[String(gid)] = list
  })
  return { replicas, groups, shards, configNum: config?.num }
}

export const renderStatus = (status: ClusterStatus): string => {
  const rows = status.replicas.map((r) => [
    r.service,
    r.replica < 0 ? "+" : String(r.replica),
    r.id === undefined ? "" : String(r.id),
    r.address,
    r.up ? "up" : "DOWN",
    r.member ?? "",
    r.lag === undefined ? "" : String(r.lag),
    r.role ?? "",
    r.term === undefined ? "" : String(r.term),
    r.leader ?? "",
    r.commitIndex === undefined ? "" : String(r.commitIndex),
    r.appliedIndex === undefined ? "" : String(r.appliedIndex),
    r.raftStateBytes === undefined ? "" : formatBytes(r.raftStateBytes),
    r.snapshotBytes === undefined ? "" : formatBytes(r.snapshotBytes),
  ])
  const table = renderTable(
    [
      "service",
      "replica",
      "id",
      "address",
      "state",
      "member",
      "lag",
      "role",
      "term",
      "leader",
      "commit",
      "applied",
      "log",
      "snapshot",
    ],
    rows,
  )
  const list = (shards: readonly number[]) => (shards.length === 0 ? "-" : shards.join(","))
  const shardLines = Object.entries(status.shards).map(([gid, shards]) => {
    const g = status.groups[gid]
    const live =
      g === undefined
        ? gid === "0"
          ? ""
          : "  (leader unreachable)"
        : g.restoring
          ? "  (its leader is restoring its snapshot)"
          : `  serving ${list(g.serving)}  pulling ${list(g.pulling)}  handing off ${list(g.handingOff)}  (at #${g.configNum})`
    return `  group ${gid === "0" ? "(none)" : gid}: assigned ${list(shards)}${live}`
  })
  for (const [gid, g] of Object.entries(status.groups)) {
    if (g.parked.length > 0 && !g.restoring)
      shardLines.push(`  group ${gid}: parked ${list(g.parked)} (kept until a group is given them)`)
    if (g.retired !== "") shardLines.push(`  group ${gid}: RETIRED: ${g.retired}`)
  }
  const config =
    status.configNum === undefined
      ? "shard configuration: unavailable (controller down?)"
      : `shard configuration #${status.configNum}:\n${shardLines.join("\n")}`
  return `${table}\n\n${config}`
}
