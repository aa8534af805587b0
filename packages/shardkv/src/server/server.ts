import {
  type KvLimits,
  type LeaderCaller,
  makeLeaderCaller,
  makeRsm,
  type RsmShape,
  type WrongLeader,
} from "@kv/kvraft"
import type { NodeId, Storage, StorageCorrupt } from "@kv/raft"
import { RpcNode } from "@kv/rpc"
import { defaultShardCount, type Gid, makeControllerClient } from "@kv/shardctrler"
import { Duration, Effect, type Scope } from "effect"
import {
  PULL_CHUNK_BYTES,
  type PullReply,
  type ShardCommandReply,
  ShardDeleteMethod,
  type ShardGetReply,
  ShardKvCommandMethod,
  ShardKvGetMethod,
  ShardKvStatusMethod,
  type ShardKvStatusReply,
  ShardPullMethod,
} from "../protocol.ts"
import {
  decodeShardCommand,
  encodeShardCommand,
  type MigrationTask,
  type ShardCommand,
  type ShardResult,
  ShardStateMachine,
} from "../stateMachine/index.ts"
import { pullShard } from "./pull.ts"
import { ShardPullBuffer } from "./pullBuffer.ts"

export interface ShardKvServerOptions {
  readonly gid: Gid
  readonly id: NodeId
  /** Raft id → address of every replica of this group (this one included). */
  readonly peers: Readonly<Record<number, string>>
  /** Addresses of the shard-controller replicas. */
  readonly controllers: readonly string[]
  readonly nShards?: number
  /** Snapshot when persisted Raft state reaches this many bytes; undefined or <= 0 never snapshots. */
  readonly maxRaftStateBytes?: number | undefined
  readonly storageName?: string
  readonly limits?: Partial<KvLimits>
  readonly tickMs?: number
  readonly seed?: number
  /** Observes each fsync's duration (metrics). */
  readonly onFsync?: (seconds: number) => void
  /** Period of the leader's configuration, pull and garbage-collection loops. Default 100 ms. */
  readonly loopIntervalMs?: number
}

export interface ShardKvServerShape {
  readonly gid: Gid
  readonly rsm: RsmShape<ShardResult>
  /** The state machine as of the last applied entry (replaced when a snapshot is installed). */
  readonly machine: () => ShardStateMachine
  readonly status: () => ShardKvStatusReply
}

/** Bound for one request to another group or the controller made by a background loop. */
const LOOP_CALL_DEADLINE_MS = 1_000
/** Resend interval of those requests: small ones, answered after a ReadIndex or a commit. */
const LOOP_ATTEMPT_TIMEOUT_MS = 100

/**
 * One replica of a shard group: a Raft group whose state machine is the ShardStateMachine, the
 * client protocol, the group-to-group migration protocol, and three loops run by the leader:
 * follow configurations one at a time, pull arriving shards, and have the previous owners
 * delete the shards this group has installed.
 */
export const makeShardKvServer = (
  options: ShardKvServerOptions,
): Effect.Effect<ShardKvServerShape, StorageCorrupt, Scope.Scope | RpcNode | Storage> =>
  Effect.gen(function* () {
    const rpc = yield* RpcNode
    const machineOptions = {
      gid: options.gid,
      nShards: options.nShards ?? defaultShardCount,
      ...(options.limits === undefined ? {} : { limits: options.limits }),
    }
    let machine = new ShardStateMachine(machineOptions)
    const rsm = yield* makeRsm<ShardResult>({
      raft: {
        id: options.id,
        peers: options.peers,
        storageName: options.storageName ?? `shardkv-${options.gid}-${options.id}`,
        ...(options.tickMs === undefined ? {} : { tickMs: options.tickMs }),
        ...(options.seed === undefined ? {} : { seed: options.seed }),
        ...(options.onFsync === undefined ? {} : { onFsync: options.onFsync }),
      },
      stateMachine: {
        apply: (bytes) => {
          const command = decodeShardCommand(bytes)
          // Only leaders encode commands; undecodable bytes in the log are a defect upstream.
          if (command === undefined) throw new Error("undecodable shard command in the log")
          return machine.apply(command)
        },
        snapshot: () => machine.snapshot(),
        restore: (bytes) => {
          machine = ShardStateMachine.restore(bytes, machineOptions)
        },
      },
      maxRaftStateBytes: options.maxRaftStateBytes,
    })
    const addressOf = (id: number): string => options.peers[id] ?? ""
    const wrongLeader = (leaderHint: number) =>
      ({ ok: false, error: "WrongLeader", leaderHint: addressOf(leaderHint) }) as const
    const fromWrongLeader = (e: WrongLeader) => wrongLeader(e.leaderHint)
    const isLeader = () => rsm.raft.status().role === "leader"
    const submit = (command: ShardCommand) => rsm.submit(encodeShardCommand(command))

    // Client protocol.

    // Callback handlers: a client request costs no fiber of its own.
    rpc.handleWith(ShardKvCommandMethod, (request, _from, reply: (reply: ShardCommandReply) => void) => {
      const status = rsm.raft.status()
      // A follower's view of ownership may lag; only the leader's refusal is worth acting on.
      if (status.role !== "leader") return reply(wrongLeader(status.leader))
      const rejected = machine.precheck(request.op)
      if (rejected !== undefined && !rejected.ok) return reply(commandReply(rejected))
      const command = encodeShardCommand({ type: "client", command: { ...request, nowMs: Date.now() } })
      rsm.submitWith(command, (outcome) =>
        reply(outcome.ok ? commandReply(outcome.value) : fromWrongLeader(outcome.error)),
      )
    })

    rpc.handleWith(ShardKvGetMethod, (request, _from, reply: (reply: ShardGetReply) => void) => {
      // Ownership is judged after ReadIndex, on state that includes every earlier reconfiguration.
      rsm.readWith(
        (): ShardGetReply => machine.get(request.key),
        (outcome) => reply(outcome.ok ? outcome.value : fromWrongLeader(outcome.error)),
      )
    })

    // Migration protocol: any replica hands off a frozen shard; deletion goes through the log.

    rpc.handle(ShardPullMethod, (request): PullReply => {
      const handOff = machine.handOff(request.configNum, request.shard)
      if (handOff.kind === "notReady") return { ok: false, error: "NotReady" }
      if (handOff.kind === "gone") return { ok: false, error: "Gone" }
      const { bytes } = handOff
      const start = Math.min(request.offset, bytes.length)
      return { ok: true, total: bytes.length, chunk: bytes.subarray(start, start + PULL_CHUNK_BYTES) }
    })

    rpc.handle(ShardDeleteMethod, (request) => {
      // State only moves forward, so "already deleted" is true even from a lagging replica.
      if (machine.deleteStatus(request.configNum, request.shard) === "done")
        return Effect.succeed({ ok: true } as const)
      return submit({ type: "deleteShard", configNum: request.configNum, shard: request.shard }).pipe(
        Effect.map((result) => (result.ok ? ({ ok: true } as const) : ({ ok: false, error: "NotReady" } as const))),
        Effect.catchTag("WrongLeader", (e) => Effect.succeed(fromWrongLeader(e))),
      )
    })

    const status = (): ShardKvStatusReply => {
      const s = rsm.raft.status()
      return {
        ...s,
        gid: options.gid,
        leaderAddress: addressOf(s.leader),
        configNum: machine.config.num,
        shards: machine.shardStates(),
        keys: machine.shardKeyCounts(),
      }
    }
    rpc.handle(ShardKvStatusMethod, () => status())

    // The leader's loops.

    const controller = yield* makeControllerClient(rpc, {
      controllers: options.controllers,
      deadlineMs: LOOP_CALL_DEADLINE_MS,
      perServerMs: 500,
      attemptTimeoutMs: LOOP_ATTEMPT_TIMEOUT_MS,
    })

    /** Proposes the next configuration once no shard is in motion; true if it was applied. */
    const followConfig = Effect.gen(function* () {
      if (!isLeader() || !machine.canReconfigure()) return false
      const num = machine.config.num + 1
      const next = yield* controller.query(num)
      if (next.num !== num || machine.config.num + 1 !== num) return false
      const result = yield* submit({ type: "reconfigure", config: next })
      return result.ok
    })

    const pullBuffers = new Map<number, ShardPullBuffer>()
    const pullOne = (task: MigrationTask) =>
      Effect.gen(function* () {
        let buffer = pullBuffers.get(task.shard)
        if (buffer === undefined || buffer.configNum !== task.configNum) {
          buffer = new ShardPullBuffer(task.configNum, task.shard)
          pullBuffers.set(task.shard, buffer)
        }
        if (!(yield* pullShard(rpc, task, buffer, { callDeadlineMs: LOOP_CALL_DEADLINE_MS }))) return
        yield* submit({ type: "insertShard", configNum: task.configNum, shard: task.shard, data: buffer.bytes() })
        // Applied or refused (a duplicate, or corrupt data to fetch again): either way start afresh.
        pullBuffers.delete(task.shard)
      })
    const pulling = new Set<number>()
    const pullShards = Effect.gen(function* () {
      if (!isLeader()) {
        pullBuffers.clear()
        return
      }
      const tasks = machine.pulls()
      for (const shard of pullBuffers.keys()) if (!tasks.some((t) => t.shard === shard)) pullBuffers.delete(shard)
      yield* forkPerShard(tasks, pulling, pullOne)
    })

    const previousOwners = new Map<Gid, LeaderCaller>()
    const ownerCaller = (task: MigrationTask): LeaderCaller => {
      let caller = previousOwners.get(task.fromGid)
      if (caller === undefined) {
        caller = makeLeaderCaller(rpc, task.servers, {
          deadlineMs: LOOP_CALL_DEADLINE_MS,
          perServerMs: 400,
          attemptTimeoutMs: LOOP_ATTEMPT_TIMEOUT_MS,
        })
        previousOwners.set(task.fromGid, caller)
      } else if (caller.servers.join() !== task.servers.join()) {
        caller.setServers(task.servers)
      }
      return caller
    }
    const collectOne = (task: MigrationTask) =>
      Effect.gen(function* () {
        const reply = yield* ownerCaller(task).call(
          ShardDeleteMethod,
          () => ({ configNum: task.configNum, shard: task.shard }),
          { operation: "shard.delete", key: String(task.shard) },
        )
        if (!reply.ok) return
        yield* submit({ type: "gcDone", configNum: task.configNum, shard: task.shard })
      })
    const collecting = new Set<number>()
    const collectGarbage = Effect.gen(function* () {
      if (isLeader()) yield* forkPerShard(machine.pendingGc(), collecting, collectOne)
    })

    const interval = Duration.millis(options.loopIntervalMs ?? 100)
    yield* Effect.forkScoped(
      Effect.forever(
        followConfig.pipe(
          Effect.catchCause(() => Effect.succeed(false)),
          // Walks missed configurations back to back; waits only when there is nothing to do.
          Effect.flatMap((progressed) => (progressed ? Effect.void : Effect.sleep(interval))),
        ),
      ),
    )
    for (const loop of [pullShards, collectGarbage]) {
      yield* Effect.forkScoped(Effect.forever(loop.pipe(Effect.ignoreCause, Effect.andThen(Effect.sleep(interval)))))
    }

    return { gid: options.gid, rsm, machine: () => machine, status }
  })

/**
 * Runs `work` for every task whose shard has none running, each in its own fiber (a child of the
 * calling loop): a previous owner that is down delays only its own shards, never the others.
 */
const forkPerShard = <E>(
  tasks: readonly MigrationTask[],
  running: Set<number>,
  work: (task: MigrationTask) => Effect.Effect<void, E>,
) =>
  Effect.forEach(
    tasks.filter((task) => !running.has(task.shard)),
    (task) => {
      running.add(task.shard)
      return Effect.forkChild(
        work(task).pipe(Effect.ignoreCause, Effect.ensuring(Effect.sync(() => running.delete(task.shard)))),
      )
    },
    { discard: true },
  )

const commandReply = (result: ShardResult): ShardCommandReply => {
  if (result.ok) return { ok: true }
  switch (result.error) {
    case "WrongGroup":
      return { ok: false, error: "WrongGroup", message: result.message }
    case "Ignored":
    case "NotReady":
      // Only migration commands give these; never thrown here, since this runs in the apply loop.
      return { ok: false, error: "WrongGroup", message: `unexpected ${result.error}: ${result.message}` }
    default:
      return { ok: false, error: result.error, message: result.message }
  }
}
