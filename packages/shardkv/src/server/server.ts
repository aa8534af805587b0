import {
  allowReplicaClients,
  commandStampMs,
  type HeldPollsOptions,
  installWhenRestored,
  type KvLimits,
  type LeaderCaller,
  makeLeaderCaller,
  makeRsm,
  type RsmShape,
  type WrongLeader,
} from "@kv/kvraft"
import type { NodeId, Storage, StorageCorrupt } from "@kv/raft"
import { RpcNode } from "@kv/rpc"
import { type Config, defaultShardCount, type Gid, makeControllerClient } from "@kv/shardctrler"
import { Clock, Effect, type Scope } from "effect"
import {
  type DeleteReply,
  groupRpc,
  INSTALL_PIECE_BYTES,
  PULL_CHUNK_BYTES,
  type PullReply,
  type ShardCommandReply,
  ShardDeleteMethod,
  type ShardGetReply,
  ShardInstalledMethod,
  ShardKvCommandMethod,
  ShardKvGetMethod,
  ShardKvReadMethod,
  ShardKvStatusMethod,
  type ShardKvStatusReply,
  ShardPullMethod,
} from "../protocol.ts"
import { handleShardReads } from "../reads.ts"
import {
  decodeShardCommand,
  encodeShardCommand,
  type MigrationTask,
  type ShardCommand,
  type ShardResult,
  ShardStateMachine,
} from "../stateMachine/index.ts"
import { ShardKvWatchPollMethod } from "../watch/protocol.ts"
import { type ShardWatchServing, serveShardWatch } from "../watch/serve.ts"
import { ConfigQueries } from "./configQueries.ts"
import { Incarnation, isMember, randomIncarnationId } from "./incarnation.ts"
import { LatestServers } from "./latestServers.ts"
import { untilNextInterval } from "./loopCadence.ts"
import { announceMembers } from "./memberAnnouncement.ts"
import { isOwnerReplica, ownerServers } from "./members.ts"
import { pullShard } from "./pull.ts"
import { ShardPullBuffer } from "./pullBuffer.ts"

export interface ShardKvServerOptions {
  readonly gid: Gid
  readonly id: NodeId
  /**
   * Raft id → address of every replica of this group (this one included): the bootstrap members,
   * or with `join` the members a new replica first hears from.
   */
  readonly peers: Readonly<Record<number, string>>
  /**
   * This replica joins the existing group as a new member (see RaftNodeConfig.join): it starts
   * empty and waits until the group's leader has added it. Default false.
   */
  readonly join?: boolean
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
  /** The address of the member that should lead whenever it is up and holds the log (RaftNodeConfig.preferredLeader). */
  readonly preferredLeader?: string | undefined
  /** Period of the leader's configuration, pull and garbage-collection loops. Default DEFAULT_LOOP_INTERVAL_MS (100 ms). */
  readonly loopIntervalMs?: number
  /**
   * Configuration queries shared with the other groups of this process (see configQueries.ts),
   * made with `configQueriesFor(loopIntervalMs)`; default: this replica's own.
   */
  readonly configQueries?: ConfigQueries
  /** Bounds on the watch polls this replica holds while it leads (see @kv/kvraft watch/heldPolls.ts). */
  readonly watch?: HeldPollsOptions
}

export interface ShardKvServerShape {
  readonly gid: Gid
  readonly rsm: RsmShape<ShardResult>
  /** The state machine as of the last applied entry (replaced when a snapshot is installed). */
  readonly machine: () => ShardStateMachine
  readonly status: () => ShardKvStatusReply
}

/** Period of a leader's background loops unless `loopIntervalMs` says otherwise. */
const DEFAULT_LOOP_INTERVAL_MS = 100

/**
 * Shared configuration queries for groups whose loops run every `loopIntervalMs`: "nothing newer"
 * answers for half an interval from its question. The loops wake together and share the question
 * in flight, and an answer never serves the next interval's questions: each interval costs the
 * controller about one read for the whole process.
 */
export const configQueriesFor = (loopIntervalMs: number = DEFAULT_LOOP_INTERVAL_MS): ConfigQueries =>
  new ConfigQueries(loopIntervalMs / 2)

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
    const loopIntervalMs = options.loopIntervalMs ?? DEFAULT_LOOP_INTERVAL_MS
    // Client keys: reads and watches for read-only, writes for read-write; shard pulls, deletes and
    // install checks stay with the server key.
    rpc.allow("read-only", [ShardKvGetMethod, ShardKvReadMethod, ShardKvWatchPollMethod, ShardKvStatusMethod])
    rpc.allow("read-write", [ShardKvCommandMethod])
    allowReplicaClients(rpc)
    const clock = yield* Clock.Clock
    // Effects started from callbacks run with this server's services (virtual time in a simulation).
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    const machineOptions = {
      gid: options.gid,
      nShards: options.nShards ?? defaultShardCount,
      ...(options.limits === undefined ? {} : { limits: options.limits }),
    }
    let machine = new ShardStateMachine(machineOptions)
    /** Set once the watch service is up (after the Raft node, which may apply entries at once). */
    let watch: ShardWatchServing | undefined
    /**
     * The snapshot this replica started from is still being restored: `machine` is an empty one
     * meanwhile, whose view of ownership and configuration must not answer anyone.
     */
    let restoring = false
    const install = (restored: ShardStateMachine) => {
      machine = restored
      restoring = false
      watch?.restored()
    }
    const rsm = yield* makeRsm<ShardResult>({
      raft: {
        id: options.id,
        peers: options.peers,
        ...(options.join === undefined ? {} : { join: options.join }),
        storageName: options.storageName ?? `shardkv-${options.gid}-${options.id}`,
        ...(options.tickMs === undefined ? {} : { tickMs: options.tickMs }),
        ...(options.seed === undefined ? {} : { seed: options.seed }),
        ...(options.onFsync === undefined ? {} : { onFsync: options.onFsync }),
        preferredLeader: options.preferredLeader,
      },
      stateMachine: {
        apply: (bytes) => {
          const command = decodeShardCommand(bytes)
          // Only leaders encode commands; undecodable bytes in the log are a defect upstream.
          if (command === undefined) throw new Error("undecodable shard command in the log")
          const before = watch?.beforeApply(machine, command)
          const result = machine.apply(command)
          watch?.applied(machine, command, before)
          return result
        },
        snapshot: () => machine.snapshot(),
        snapshotWithRoom: (roomBytes) => machine.snapshotWithRoom(roomBytes),
        // Bound to the machine of this moment: the RSM drops the job if a restore replaces it.
        beginSnapshot: (roomBytes) => machine.beginSnapshot(roomBytes),
        restore: (bytes) => install(ShardStateMachine.restore(bytes, machineOptions)),
        // The snapshot a replica starts from, restored a slice at a time while its Raft node answers.
        beginRestore: (bytes) => {
          restoring = true
          return installWhenRestored(ShardStateMachine.beginRestore(bytes, machineOptions), install)
        },
      },
      maxRaftStateBytes: options.maxRaftStateBytes,
    })
    // Members added after the start are known by the membership in the log.
    const addressOf = (id: number): string =>
      options.peers[id] ?? rsm.raft.status().members.find((m) => m.id === id)?.address ?? ""
    const wrongLeader = (leaderHint: number) =>
      ({ ok: false, error: "WrongLeader", leaderHint: addressOf(leaderHint) }) as const
    const fromWrongLeader = (e: WrongLeader) => wrongLeader(e.leaderHint)
    const isLeader = () => rsm.raft.leader() === options.id
    const submit = (command: ShardCommand) => rsm.submit(encodeShardCommand(command))
    // A piece is one log entry and a chunk one message: both stay within what this node's transport
    // and Raft carry, however small the transport's messages are configured.
    const installPieceBytes = Math.min(INSTALL_PIECE_BYTES, Math.floor(rsm.raft.maxEntryBytes / 2))
    const pullChunkBytes = Math.min(PULL_CHUNK_BYTES, Math.floor(rpc.transport.maxMessageBytes / 2))

    // Client protocol.

    // Callback handlers: a client request costs no fiber of its own.
    rpc.handleWith(ShardKvCommandMethod, (request, _from, reply: (reply: ShardCommandReply) => void) => {
      const leader = rsm.raft.leader()
      // A follower's view of ownership may lag; only the leader's refusal is worth acting on.
      if (leader !== options.id) return reply(wrongLeader(leader))
      // Refused early only by restored state; applying checks again in any case.
      const rejected = restoring ? undefined : machine.precheck(request.op)
      if (rejected !== undefined && !rejected.ok) return reply(commandReply(rejected))
      const command = encodeShardCommand({
        type: "client",
        command: { ...request, nowMs: commandStampMs(clock) },
      })
      rsm.submitWith(command, (outcome) =>
        reply(
          outcome.ok
            ? commandReply(outcome.value)
            : outcome.error._tag === "WrongLeader"
              ? fromWrongLeader(outcome.error)
              : { ok: false, error: "ValueTooLarge", message: `command exceeds ${outcome.error.maxBytes} bytes` },
        ),
      )
    })

    rpc.handleWith(ShardKvGetMethod, (request, _from, reply: (reply: ShardGetReply) => void) => {
      // Ownership is judged after ReadIndex, on state that includes every earlier reconfiguration.
      rsm.readWith(
        (): ShardGetReply => machine.get(request.key),
        (outcome) => reply(outcome.ok ? outcome.value : fromWrongLeader(outcome.error)),
      )
    })

    handleShardReads(rpc, rsm, () => machine, fromWrongLeader)
    watch = yield* serveShardWatch(
      rpc,
      rsm,
      () => machine,
      () => wrongLeader(rsm.raft.leader()),
      options.watch,
    )

    // Migration protocol: any replica hands off a frozen shard, only to the replicas of the group
    // the configuration gives it to; deletion goes through the log, once that group has it.

    const controller = yield* makeControllerClient(rpc, {
      controllers: options.controllers,
      deadlineMs: LOOP_CALL_DEADLINE_MS,
      perServerMs: 500,
      attemptTimeoutMs: LOOP_ATTEMPT_TIMEOUT_MS,
    })
    const configQueries = options.configQueries ?? configQueriesFor(loopIntervalMs)
    const latestServers = new LatestServers(controller.query(-1), (gid) => controller.serversOf(gid), clock)
    // Configurations never change once made, so a few recent ones are kept for these checks.
    const configCache = new Map<number, Config>()
    const configAt = (num: number): Effect.Effect<Config | undefined> => {
      const current = machine.config
      if (current.num === num) return Effect.succeed(current)
      const cached = configCache.get(num)
      if (cached !== undefined) return Effect.succeed(cached)
      return controller.query(num).pipe(
        Effect.map((config) => {
          latestServers.observe(config)
          if (config.num !== num) return undefined
          if (configCache.size >= 64) configCache.delete(configCache.keys().next().value!)
          configCache.set(num, config)
          return config
        }),
        Effect.orElseSucceed(() => undefined),
      )
    }
    /**
     * Whether `from` speaks for the group `config` gives `shard` to: one of its servers there, or in
     * the latest configuration (a member it added since, which it has told the controller of).
     */
    const isOwnerAddress = (config: Config, shard: number, from: string): Effect.Effect<boolean> =>
      isOwnerReplica(config, shard, from) ? Effect.succeed(true) : latestServers.lists(config.shards[shard] ?? 0, from)
    const fromOwner = (toConfigNum: number, shard: number, from: string): Effect.Effect<Config | undefined> =>
      configAt(toConfigNum).pipe(
        Effect.flatMap((config) =>
          config === undefined
            ? Effect.succeed(undefined)
            : isOwnerAddress(config, shard, from).pipe(Effect.map((owner) => (owner ? config : undefined))),
        ),
      )

    rpc.handleWith(ShardPullMethod, (request, from, reply: (reply: PullReply) => void) => {
      const answer = (): PullReply => {
        const handOff = machine.handOff(request.configNum, request.shard)
        if (handOff.kind === "notReady") return { ok: false, error: "NotReady" }
        if (handOff.kind === "gone") return { ok: false, error: "Gone" }
        const { bytes, checksum } = handOff
        const start = Math.min(request.offset, bytes.length)
        return { ok: true, total: bytes.length, checksum, chunk: bytes.subarray(start, start + pullChunkBytes) }
      }
      if (request.toConfigNum === machine.config.num && isOwnerReplica(machine.config, request.shard, from)) {
        return reply(answer())
      }
      if (request.toConfigNum < request.configNum) return reply({ ok: false, error: "Refused" })
      runFork(
        fromOwner(request.toConfigNum, request.shard, from).pipe(
          Effect.map((config) => reply(config === undefined ? { ok: false, error: "Refused" } : answer())),
        ),
      )
    })

    /** Whether any replica of the new owner says it has installed `shard` given to it at `toConfigNum`. */
    const ownerInstalled = (config: Config, shard: number) =>
      Effect.gen(function* () {
        for (const server of latestServers.of(config.shards[shard] ?? 0, ownerServers(config, shard))) {
          const reply = yield* groupRpc(rpc, config.shards[shard] ?? 0)
            .call(
              server,
              ShardInstalledMethod,
              { configNum: config.num, shard },
              { attemptTimeoutMs: LOOP_ATTEMPT_TIMEOUT_MS, deadlineMs: 300 },
            )
            .pipe(Effect.option)
          if (reply._tag === "Some" && reply.value.installed) return true
        }
        return false
      })

    rpc.handle(ShardDeleteMethod, (request, from): Effect.Effect<DeleteReply> => {
      // State only moves forward, so "already deleted" is true even from a lagging replica.
      if (machine.deleteStatus(request.configNum, request.shard) === "done") {
        return Effect.succeed({ ok: true } as const)
      }
      return Effect.gen(function* () {
        const config = yield* fromOwner(request.toConfigNum, request.shard, from)
        if (config === undefined || request.toConfigNum < request.configNum) {
          return { ok: false, error: "Refused" } as const
        }
        if (!(yield* ownerInstalled(config, request.shard))) return { ok: false, error: "NotReady" } as const
        const result = yield* submit({ type: "deleteShard", configNum: request.configNum, shard: request.shard })
        return result.ok ? ({ ok: true } as const) : ({ ok: false, error: "NotReady" } as const)
      }).pipe(
        Effect.catchTag("WrongLeader", (e) => Effect.succeed(fromWrongLeader(e))),
        // deleteShard is a few bytes, far below one Raft entry's limit.
        Effect.catchTag("ProposalTooLarge", (e) => Effect.die(e)),
      )
    })

    rpc.handle(ShardInstalledMethod, (request) => ({
      installed: machine.hasInstalled(request.configNum, request.shard),
    }))

    // Set once the leader loops are built below; a status request may come in before that.
    let registration: Incarnation | undefined
    const status = (): ShardKvStatusReply => {
      const s = rsm.raft.status()
      return {
        ...s,
        gid: options.gid,
        leaderAddress: addressOf(s.leader),
        configNum: machine.config.num,
        shards: machine.shardStates(),
        retired: registration?.state.kind === "retired" ? registration.state.message : "",
        keys: machine.shardKeyCounts(),
        restoring,
      }
    }
    rpc.handle(ShardKvStatusMethod, () => status())

    // The leader's loops.

    /** Proposes the next configuration once no shard is in motion; true if it was applied. */
    const incarnation = new Incarnation({
      gid: options.gid,
      controller,
      machine: () => machine,
      submit,
      // From the Random service, not the Raft seed: a group restarted empty with the same
      // configuration must still be a new incarnation (in a simulation, the world's stream).
      newIncarnation: randomIncarnationId,
      configAt,
      log: (message) => console.error(`shardkv: ${message}`),
    })
    registration = incarnation

    /**
     * Proposes the next configuration once no shard is in motion; true if it was applied. The
     * controller first learns of this incarnation, and of every change to its membership.
     */
    const followConfig = Effect.gen(function* () {
      if (restoring || !isLeader() || !machine.canReconfigure()) return false
      if (!(yield* incarnation.ensure(0))) return false
      const num = machine.config.num + 1
      const next = yield* configQueries.query(num, controller.query(num))
      if (next.num !== num || machine.config.num + 1 !== num) return false
      const joinsOrLeaves = isMember(next, options.gid) !== isMember(machine.config, options.gid)
      if (joinsOrLeaves && !(yield* incarnation.ensure(num))) return false
      const result = yield* submit({ type: "reconfigure", config: next })
      return result.ok
    })

    /**
     * Installs `task`'s shard piece by piece, each piece one log entry, resuming where the applied
     * state says the install stands: a new leader, or a piece lost on the way, picks up from there.
     */
    const pullOne = (task: MigrationTask) =>
      Effect.gen(function* () {
        let fromStart = false
        while (isLeader()) {
          const current = machine.pulls().find((t) => t.shard === task.shard && t.configNum === task.configNum)
          if (current === undefined) return
          const start = fromStart ? 0 : machine.installedBytes(task.shard)
          const buffer = new ShardPullBuffer(current.handOffConfigNum, task.shard, start, installPieceBytes)
          const source = { ...current, servers: latestServers.of(current.fromGid, current.servers) }
          if (
            !(yield* pullShard(groupRpc(rpc, current.fromGid), source, buffer, {
              callDeadlineMs: LOOP_CALL_DEADLINE_MS,
            }))
          ) {
            // The source may have replaced members since: the next round also tries its latest list.
            yield* latestServers.refresh(current.fromGid)
            return
          }
          const total = buffer.total!
          const checksum = buffer.checksum!
          const incoming = machine.incomingShard(task.shard)
          if (start > 0 && (incoming === undefined || incoming.total !== total || incoming.checksum !== checksum)) {
            // The source's copy is not the one the installed pieces came from: start over.
            fromStart = true
            continue
          }
          fromStart = false
          const bytes = buffer.bytes()
          // Refused pieces (a duplicate, a stale offset, a failed checksum) are fixed by the next
          // round, which reads again where the install stands.
          yield* submit({
            type: "installPiece",
            configNum: task.configNum,
            shard: task.shard,
            offset: start,
            total,
            checksum,
            bytes,
          })
        }
      })
    const pulling = new Set<number>()
    const pullShards = Effect.gen(function* () {
      if (isLeader()) yield* forkPerShard(machine.pulls(), pulling, pullOne)
    })

    const previousOwners = new Map<Gid, LeaderCaller>()
    const ownerCaller = (task: MigrationTask): LeaderCaller => {
      const servers = latestServers.of(task.fromGid, task.servers)
      let caller = previousOwners.get(task.fromGid)
      if (caller === undefined) {
        caller = makeLeaderCaller(groupRpc(rpc, task.fromGid), servers, {
          deadlineMs: LOOP_CALL_DEADLINE_MS,
          perServerMs: 400,
          attemptTimeoutMs: LOOP_ATTEMPT_TIMEOUT_MS,
        })
        previousOwners.set(task.fromGid, caller)
      } else if (caller.servers.join() !== servers.join()) {
        caller.setServers(servers)
      }
      return caller
    }
    const collectOne = (task: MigrationTask) =>
      Effect.gen(function* () {
        const reply = yield* ownerCaller(task)
          .call(
            ShardDeleteMethod,
            () => ({ configNum: task.handOffConfigNum, toConfigNum: task.configNum, shard: task.shard }),
            { operation: "shard.delete", key: String(task.shard) },
          )
          .pipe(Effect.tapError(() => latestServers.refresh(task.fromGid)))
        if (!reply.ok) return
        yield* submit({ type: "gcDone", configNum: task.configNum, shard: task.shard })
      })
    const collecting = new Set<number>()
    const collectGarbage = Effect.gen(function* () {
      if (isLeader()) yield* forkPerShard(machine.pendingGc(), collecting, collectOne)
    })

    const nextInterval = untilNextInterval(loopIntervalMs)
    // Each loop's work is the leader's: a follower's loops sleep until it leads instead of waking
    // every interval to find nothing to do (four timers, 40 wake-ups a second per replica).
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.andThen(rsm.raft.leading, followConfig).pipe(
          Effect.catchCause(() => Effect.succeed(false)),
          // Walks missed configurations back to back; waits only when there is nothing to do.
          Effect.flatMap((progressed) => (progressed ? Effect.void : nextInterval)),
        ),
      ),
    )
    const announce = Effect.gen(function* () {
      if (isLeader()) {
        yield* announceMembers({
          gid: options.gid,
          status: () => rsm.raft.status(),
          machine: () => machine,
          controller,
          incarnation,
          latest: latestServers,
        })
      }
    })
    for (const loop of [pullShards, collectGarbage, announce]) {
      yield* Effect.forkScoped(
        Effect.forever(Effect.andThen(rsm.raft.leading, loop).pipe(Effect.ignoreCause, Effect.andThen(nextInterval))),
      )
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
  if (result.ok) return result
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
