import type { NodeId, Storage, StorageCorrupt } from "@kv/raft"
import { RpcNode } from "@kv/rpc"
import { Clock, Effect, type Scope } from "effect"
import { commandStampMs } from "./commandClock.ts"
import { type LeaseOptions, makeLeaseDeadlines, serveLeases } from "./lease/serveLeases.ts"
import { memberAddress } from "./members/admin.ts"
import { allowReplicaClients } from "./process/access.ts"
import {
  type CommandReply,
  type GetReply,
  KvCommandMethod,
  KvGetMethod,
  KvLeaseMethod,
  KvReadMethod,
  KvStatusMethod,
  type StatusReply,
} from "./protocol.ts"
import { handleKvReads } from "./reads.ts"
import { installWhenRestored, makeRsm, type RsmShape, type SubmitError, type WrongLeader } from "./rsm/index.ts"
import {
  decodeCommand,
  decodeLeaderCommand,
  encodeCommand,
  isLeaderCommand,
  type KvLimits,
  type KvResult,
  KvStateMachine,
  okResult,
} from "./stateMachine/index.ts"
import type { HeldPollsOptions } from "./watch/heldPolls.ts"
import { KvWatchPollMethod } from "./watch/protocol.ts"
import { serveKvWatch, type WatchServing } from "./watch/serve.ts"

export interface KvServerOptions {
  readonly id: NodeId
  /** Raft id → address of every replica of the group (this one included). */
  readonly peers: Readonly<Record<number, string>>
  readonly storageName?: string
  /** Joins an existing group as a new member instead of bootstrapping one from `peers` (see RaftNodeConfig.join). */
  readonly join?: boolean
  /** Snapshot when persisted Raft state reaches this many bytes; undefined or <= 0 never snapshots. */
  readonly maxRaftStateBytes?: number | undefined
  readonly limits?: Partial<KvLimits>
  readonly tickMs?: number
  readonly seed?: number
  readonly onFsync?: (seconds: number) => void
  /** The address of the member that should lead whenever it is up and holds the log (RaftNodeConfig.preferredLeader). */
  readonly preferredLeader?: string | undefined
  /** Bounds on the watch polls this replica holds while it leads (see watch/heldPolls.ts). */
  readonly watch?: HeldPollsOptions
  /** The leader's lease loop (see lease/serveLeases.ts). */
  readonly leases?: LeaseOptions
}

export interface KvServerShape {
  readonly rsm: RsmShape<KvResult>
  readonly status: () => StatusReply
  /** Gauges for the metrics endpoint. */
  readonly gauges: () => Readonly<Record<string, number>>
  /** The state machine as of the last applied entry (replaced when a snapshot is installed). */
  readonly machine: () => KvStateMachine
}

/** Adapts the KV state machine (replaced wholesale on snapshot restore) to the RSM interface. */
const kvReplica = (limits: Partial<KvLimits> | undefined, adopt: (machine: KvStateMachine) => void) => {
  let machine = new KvStateMachine(limits)
  adopt(machine)
  /** Set once the watch service is up; nothing is applied before. */
  let watch: WatchServing | undefined
  /** A restored machine takes the place of the current one. */
  const install = (restored: KvStateMachine) => {
    machine = restored
    adopt(machine)
    watch?.restored()
  }
  return {
    current: () => machine,
    setWatch: (serving: WatchServing) => {
      watch = serving
    },
    stateMachine: {
      apply: (command: Uint8Array): KvResult => {
        if (isLeaderCommand(command)) {
          const leader = decodeLeaderCommand(command)
          if (leader === undefined) throw new Error("undecodable leader command in the log")
          const before = machine.revision
          machine.applyLeader(leader)
          watch?.applied(machine, before)
          return okResult
        }
        const decoded = decodeCommand(command)
        // Only the leader encodes commands, after validation; undecodable bytes are a defect upstream.
        if (decoded === undefined) throw new Error("undecodable command in the log")
        const before = machine.revision
        const result = machine.apply(decoded)
        watch?.applied(machine, before)
        return result
      },
      snapshot: () => machine.snapshot(),
      snapshotWithRoom: (roomBytes: number) => machine.snapshotWithRoom(roomBytes),
      beginSnapshot: (roomBytes: number) => machine.beginSnapshot(roomBytes),
      restore: (bytes: Uint8Array) => install(KvStateMachine.restore(bytes, limits)),
      beginRestore: (bytes: Uint8Array) => installWhenRestored(KvStateMachine.beginRestore(bytes, limits), install),
    },
  }
}

/**
 * One kvraft replica: a Raft node and the KV state machine behind the client protocol, on the
 * RpcNode it shares with Raft's peer traffic.
 */
export const makeKvServer = (
  options: KvServerOptions,
): Effect.Effect<KvServerShape, StorageCorrupt, Scope.Scope | RpcNode | Storage> =>
  Effect.gen(function* () {
    const rpc = yield* RpcNode
    // Client keys: reads (and watches) for read-only, every write (leases and transactions too) for
    // read-write; membership via allowReplicaClients. The rest needs the server key.
    rpc.allow("read-only", [KvGetMethod, KvReadMethod, KvLeaseMethod, KvWatchPollMethod, KvStatusMethod])
    rpc.allow("read-write", [KvCommandMethod])
    allowReplicaClients(rpc)
    const clock = yield* Clock.Clock
    const leaseTime = makeLeaseDeadlines(clock)
    const replica = kvReplica(options.limits, leaseTime.adopt)
    const rsm = yield* makeRsm({
      raft: {
        id: options.id,
        peers: options.peers,
        ...(options.storageName === undefined ? {} : { storageName: options.storageName }),
        ...(options.join === true ? { join: true } : {}),
        ...(options.tickMs === undefined ? {} : { tickMs: options.tickMs }),
        ...(options.seed === undefined ? {} : { seed: options.seed }),
        ...(options.onFsync === undefined ? {} : { onFsync: options.onFsync }),
        preferredLeader: options.preferredLeader,
      },
      stateMachine: replica.stateMachine,
      maxRaftStateBytes: options.maxRaftStateBytes,
    })
    const addressOf = (id: number): string => memberAddress(rsm.raft, id) || (options.peers[id] ?? "")
    const wrongLeader = (error: WrongLeader) =>
      ({ ok: false, error: "WrongLeader", leaderHint: addressOf(error.leaderHint) }) as const
    // Past what one Raft entry holds (limits set above the transport's message size): never retryable.
    const refused = (error: SubmitError): CommandReply =>
      error._tag === "WrongLeader"
        ? wrongLeader(error)
        : { ok: false, error: "ValueTooLarge", message: `command of ${error.bytes} bytes exceeds ${error.maxBytes}` }

    /**
     * Commands proposed here and not yet answered, by client and seq. A client resends a request
     * that is slow to commit; proposing each copy again would add log traffic exactly when the
     * group is already behind (a retry storm), so a copy waits for the first one's outcome.
     */
    const inFlight = new Map<string, ((reply: CommandReply) => void)[]>()

    // Callback handlers: a request costs no fiber, no Deferred and no timer of its own.
    rpc.handleWith(KvCommandMethod, (request, _from, reply: (reply: CommandReply) => void) => {
      const rejected = replica.current().precheck(request.op)
      if (rejected !== undefined && !rejected.ok) {
        reply(rejected)
        return
      }
      const key = `${request.clientId}:${request.seq}`
      const waiting = inFlight.get(key)
      if (waiting !== undefined) {
        waiting.push(reply)
        return
      }
      const replies = [reply]
      inFlight.set(key, replies)
      rsm.submitWith(encodeCommand({ ...request, nowMs: commandStampMs(clock) }), (outcome) => {
        inFlight.delete(key)
        const answer = outcome.ok ? outcome.value : refused(outcome.error)
        for (const r of replies) r(answer)
      })
    })

    rpc.handleWith(KvGetMethod, (request, _from, reply: (reply: GetReply) => void) => {
      rsm.readWith(
        () => replica.current().get(request.key),
        (outcome) => reply(outcome.ok ? { ok: true, value: outcome.value } : wrongLeader(outcome.error)),
      )
    })

    handleKvReads(rpc, rsm, replica.current, wrongLeader)
    const watch = yield* serveKvWatch(
      rpc,
      rsm,
      replica.current,
      () => ({ ok: false, error: "WrongLeader", leaderHint: addressOf(rsm.raft.leader()) }),
      options.watch,
    )
    replica.setWatch(watch)
    yield* serveLeases(rpc, rsm, replica.current, leaseTime.deadlines, wrongLeader, options.leases)

    const status = (): StatusReply => {
      const s = rsm.raft.status()
      return { ...s, leaderAddress: addressOf(s.leader), keys: replica.current().size() }
    }
    rpc.handle(KvStatusMethod, () => status())

    const gauges = () => ({
      kv_keys: replica.current().size(),
      kv_client_sessions: replica.current().sessions.count(),
      kv_client_sessions_expired: replica.current().sessions.expiredCount(),
      kv_watch_polls_held: watch.held(),
      kv_leases: leaseTime.count(),
    })
    return { rsm, status, gauges, machine: replica.current }
  })
