import {
  allowReplicaClients,
  commandStampMs,
  makeRsm,
  memberAddress,
  type RsmShape,
  type WrongLeader,
} from "@kv/kvraft"
import type { NodeId, Storage, StorageCorrupt } from "@kv/raft"
import { RpcNode } from "@kv/rpc"
import { Clock, Effect, type Scope } from "effect"
import { defaultShardCount } from "../config/index.ts"
import { encodeControllerCommand } from "./command.ts"
import { type AdminResult, ControllerStateMachine } from "./controllerStateMachine.ts"
import {
  ControllerAdminMethod,
  ControllerGroupServersMethod,
  ControllerIncarnationMethod,
  ControllerQueryMethod,
} from "./protocol.ts"

export interface ControllerServerOptions {
  readonly id: NodeId
  readonly peers: Readonly<Record<number, string>>
  readonly nShards?: number
  readonly storageName?: string
  /** Joins the running group as a new member instead of bootstrapping from `peers` (RaftNodeConfig.join). */
  readonly join?: boolean
  readonly maxRaftStateBytes?: number | undefined
  readonly seed?: number
  readonly onFsync?: (seconds: number) => void
  /** The address of the member that should lead whenever it is up and holds the log (RaftNodeConfig.preferredLeader). */
  readonly preferredLeader?: string | undefined
}

export interface ControllerServerShape {
  readonly rsm: RsmShape<AdminResult>
  readonly machine: () => ControllerStateMachine
}

/** One shard-controller replica: the configuration state machine on Raft, behind its protocol. */
export const makeControllerServer = (
  options: ControllerServerOptions,
): Effect.Effect<ControllerServerShape, StorageCorrupt, Scope.Scope | RpcNode | Storage> =>
  Effect.gen(function* () {
    const rpc = yield* RpcNode
    // Client keys: reading configurations for read-only (every clerk does), join/leave/move for admin
    // (ctrl.admin carries the group servers' own operations too: admin keys are trusted with those).
    rpc.allow("read-only", [ControllerQueryMethod, ControllerGroupServersMethod])
    rpc.allow("admin", [ControllerAdminMethod])
    allowReplicaClients(rpc)
    const clock = yield* Clock.Clock
    const nShards = options.nShards ?? defaultShardCount
    let machine = new ControllerStateMachine(nShards)
    const rsm = yield* makeRsm<AdminResult>({
      raft: {
        id: options.id,
        peers: options.peers,
        ...(options.storageName === undefined ? {} : { storageName: options.storageName }),
        ...(options.join === true ? { join: true } : {}),
        ...(options.seed === undefined ? {} : { seed: options.seed }),
        ...(options.onFsync === undefined ? {} : { onFsync: options.onFsync }),
        preferredLeader: options.preferredLeader,
      },
      stateMachine: {
        apply: (command) => machine.apply(command),
        snapshot: () => machine.snapshot(),
        // Bound to the machine of this moment: the RSM drops the job if a restore replaces it.
        beginSnapshot: (roomBytes) => machine.beginSnapshot(roomBytes),
        restore: (bytes) => {
          const next = new ControllerStateMachine(nShards)
          next.restore(bytes)
          machine = next
        },
      },
      maxRaftStateBytes: options.maxRaftStateBytes,
    })
    const wrongLeader = (e: WrongLeader) =>
      ({
        ok: false,
        error: "WrongLeader",
        // Members added after the start are not in `peers`: their address travels in the membership.
        leaderHint: memberAddress(rsm.raft, e.leaderHint) || (options.peers[e.leaderHint] ?? ""),
      }) as const

    rpc.handle(ControllerAdminMethod, (request) =>
      rsm
        .submit(encodeControllerCommand({ ...request, nowMs: commandStampMs(clock) }))
        // A controller command is far below one Raft entry's limit: ProposalTooLarge is a defect.
        .pipe(
          Effect.catchTag("WrongLeader", (e) => Effect.succeed(wrongLeader(e))),
          Effect.orDie,
        ),
    )
    rpc.handle(ControllerQueryMethod, (request) =>
      rsm
        .read(() => machine.query(request.num))
        .pipe(
          Effect.map((config) => ({ ok: true, config }) as const),
          Effect.catchTag("WrongLeader", (e) => Effect.succeed(wrongLeader(e))),
        ),
    )
    rpc.handle(ControllerGroupServersMethod, (request) =>
      rsm
        .read(() => machine.serversOf(request.gid))
        .pipe(
          Effect.map((servers) => ({ ok: true, servers }) as const),
          Effect.catchTag("WrongLeader", (e) => Effect.succeed(wrongLeader(e))),
        ),
    )
    rpc.handle(ControllerIncarnationMethod, (request) =>
      rsm
        .read(() => machine.incarnationOf(request.gid))
        .pipe(
          Effect.map(
            (info) => ({ ok: true, incarnation: info?.incarnation ?? "", startAfter: info?.startAfter ?? 0 }) as const,
          ),
          Effect.catchTag("WrongLeader", (e) => Effect.succeed(wrongLeader(e))),
        ),
    )
    return { rsm, machine: () => machine }
  })
