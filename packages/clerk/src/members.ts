import {
  type ClusterConfig,
  loadClusterConfig,
  type MemberChangeFailure,
  type MemberClientShape,
  type MemberInfo,
  type MemberList,
  makeMemberClient,
  type ReplaceError,
  type ReplaceOptions,
  replaceMember,
  type Timeout,
} from "@kv/kvraft"
import { type PermissionDenied, RpcNode, type RpcNodeShape, Transport, type TransportError } from "@kv/rpc"
import { makeControllerClient } from "@kv/shardctrler"
import { groupRpc } from "@kv/shardkv"
import { Context, Effect, Layer, ManagedRuntime } from "effect"
import { clientBind, configAddresses } from "./clientBind.ts"

/** Which Raft group: the single kvraft group, the shard controller, or a shard group by gid. */
export type MemberGroup = "kvraft" | "controller" | { readonly gid: number }

export interface ConnectMembersOptions {
  /** The group to manage. Default "kvraft". */
  readonly group?: MemberGroup
  /** Addresses of some of the group's members; default the group's replicas in `config`. */
  readonly servers?: readonly string[]
  /** A cluster.toml: the group's replicas (a shard group missing there is looked up at the controller) and the cluster key. */
  readonly config?: string
  readonly clusterKey?: string
  /** Local UDP address to bind; default an ephemeral port on 127.0.0.1, or on 0.0.0.0 when a server is not on loopback. */
  readonly bind?: string
  /** Bound of one list or change, retries included. Default 30 s. */
  readonly deadlineMs?: number
}

/** The member admin of one group as Effects. */
export interface MembersShape {
  /** The members as the leader sees them: role (leader, voter, learner), match and lag. */
  members(): Effect.Effect<MemberList, Timeout | PermissionDenied>
  /** Adds a non-voting member that receives the log; promote it once it has caught up. */
  addLearner(id: number, address: string): Effect.Effect<readonly MemberInfo[], MemberChangeFailure>
  /** Adds a voter at once (prefer addLearner, then promote: a voter far behind slows every commit). */
  addVoter(id: number, address: string): Effect.Effect<readonly MemberInfo[], MemberChangeFailure>
  promote(id: number): Effect.Effect<readonly MemberInfo[], MemberChangeFailure>
  /** Removes a voter or a learner (the leader included: it hands leadership over first). */
  remove(id: number): Effect.Effect<readonly MemberInfo[], MemberChangeFailure>
  /**
   * Replaces member `oldId` by a new member: adds it as a learner, waits until it has caught up
   * (lag small and steady), promotes it, removes the old one. Each step is decided from the current
   * membership, so a replace that was interrupted (a crash, a timeout, Ctrl-C) continues from where
   * the membership stands when it is run again with the same arguments.
   */
  replace(
    oldId: number,
    next: { readonly id: number; readonly address: string },
    options?: ReplaceOptions,
  ): Effect.Effect<readonly MemberInfo[], ReplaceError>
}

export const makeMembers = (client: MemberClientShape): MembersShape => {
  return {
    members: () => client.list(),
    addLearner: (id, address) => client.change("add-learner", id, address),
    addVoter: (id, address) => client.change("add-voter", id, address),
    promote: (id) => client.change("promote", id),
    remove: (id) => client.change("remove", id),
    replace: (oldId, next, options) => replaceMember(client, oldId, next, options),
  }
}

/** The addresses to reach `group` at: the configuration's, or the controller's for a shard group it lacks. */
export const groupServers = (
  rpc: RpcNodeShape,
  config: ClusterConfig,
  group: MemberGroup,
  deadlineMs: number,
): Effect.Effect<readonly string[], Error | Timeout> => {
  if (group === "kvraft") {
    if (config.kvraft === undefined) return Effect.fail(new Error(`${config.source} has no [kvraft] section`))
    return Effect.succeed(config.kvraft.replicas)
  }
  if (group === "controller") {
    if (config.controller.replicas.length === 0) return Effect.fail(new Error(`${config.source} has no [controller]`))
    return Effect.succeed(config.controller.replicas)
  }
  const listed = config.groups.get(group.gid)
  if (listed !== undefined) return Effect.succeed(listed.replicas)
  if (config.controller.replicas.length === 0) {
    return Effect.fail(new Error(`group ${group.gid} is not in ${config.source}, which has no [controller] to ask`))
  }
  return makeControllerClient(rpc, { controllers: config.controller.replicas, deadlineMs }).pipe(
    Effect.flatMap((controller) => controller.query(-1)),
    Effect.mapError((e) => (e._tag === "Timeout" ? e : new Error(e.message))),
    Effect.flatMap((latest) => {
      const servers = latest.groups[String(group.gid)]
      return servers === undefined
        ? Effect.fail(
            new Error(`group ${group.gid} is neither in ${config.source} nor in the controller's configuration`),
          )
        : Effect.succeed(servers)
    }),
  )
}

/** The member admin as an Effect service, for Effect apps. */
export class KvMembers extends Context.Service<KvMembers, MembersShape>()("@kv/clerk/KvMembers") {
  static layer(options: ConnectMembersOptions): Layer.Layer<KvMembers, TransportError | Error | Timeout> {
    return Layer.unwrap(
      Effect.sync(() => {
        const config = options.config === undefined ? undefined : loadClusterConfig(options.config)
        const clusterKey =
          options.clusterKey ??
          config?.clientKey ??
          config?.clusterKey ??
          process.env.KV_CLIENT_KEY ??
          process.env.KV_CLUSTER_KEY
        const rpc = RpcNode.layer.pipe(
          Layer.provide(
            Transport.layerUdp({
              bind:
                options.bind ?? clientBind([...(options.servers ?? []), ...(config ? configAddresses(config) : [])]),
              key: clusterKey,
            }),
          ),
        )
        const deadlineMs = options.deadlineMs ?? 30_000
        return Layer.effect(
          KvMembers,
          Effect.gen(function* () {
            const node = yield* RpcNode
            let servers = options.servers ?? []
            if (servers.length === 0) {
              if (config === undefined)
                return yield* Effect.fail(new Error("connectMembers() needs `servers` or `config`"))
              servers = yield* groupServers(node, config, options.group ?? "kvraft", deadlineMs)
            }
            const group = options.group ?? "kvraft"
            const rpc = typeof group === "object" ? groupRpc(node, group.gid) : node
            return makeMembers(yield* makeMemberClient(rpc, { servers, deadlineMs }))
          }),
        ).pipe(Layer.provide(rpc))
      }),
    )
  }
}

/** The member admin as Promises. Rejects with the typed errors of `MembersShape`. */
export interface Members {
  members(): Promise<MemberList>
  addLearner(id: number, address: string): Promise<readonly MemberInfo[]>
  addVoter(id: number, address: string): Promise<readonly MemberInfo[]>
  promote(id: number): Promise<readonly MemberInfo[]>
  remove(id: number): Promise<readonly MemberInfo[]>
  replace(
    oldId: number,
    next: { readonly id: number; readonly address: string },
    options?: ReplaceOptions,
  ): Promise<readonly MemberInfo[]>
  close(): Promise<void>
}

/** Connects to one group's members (the kvraft group by default; `group: "controller"` or `{ gid }`). */
export const connectMembers = async (options: ConnectMembersOptions): Promise<Members> => {
  const runtime = ManagedRuntime.make(KvMembers.layer(options))
  const members = await runtime.runPromise(KvMembers.useSync((m) => m))
  return {
    members: () => runtime.runPromise(members.members()),
    addLearner: (id, address) => runtime.runPromise(members.addLearner(id, address)),
    addVoter: (id, address) => runtime.runPromise(members.addVoter(id, address)),
    promote: (id) => runtime.runPromise(members.promote(id)),
    remove: (id) => runtime.runPromise(members.remove(id)),
    replace: (oldId, next, replaceOptions) => runtime.runPromise(members.replace(oldId, next, replaceOptions)),
    close: () => runtime.dispose(),
  }
}
