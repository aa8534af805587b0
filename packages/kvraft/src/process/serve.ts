import { join as joinPath } from "node:path"
import { ReadyRounds, type ReadyRoundsShape, Storage, type StorageCorrupt } from "@kv/raft"
import { type KeyGrant, RpcNode, type RpcNodeShape, type TransportError } from "@kv/rpc"
import { Cause, Clock, Context, Deferred, Duration, Effect, Exit, Layer, Logger, Option, type Scope } from "effect"
import { monotonicMs } from "../commandClock.ts"
import { advertisedNotLocalHint, listenPort, localAddresses, resolveListen } from "../config/listenAddress.ts"
import type { RsmShape } from "../rsm/rsm.ts"
import { lockReplicaDir } from "./dataDirLock.ts"
import { fsyncWarning, fsyncWarnThreshold, probeFsyncOffThread } from "./diskCheck.ts"
import { askGroup, commandsFor, freshest, isEmptyDataDir, lostIdentityProblem } from "./groupProbe.ts"
import {
  DEFAULT_METRICS_HOST,
  type MetricsSource,
  metricsHostProblem,
  observeReplica,
  serveMetrics,
} from "./metrics.ts"
import { type SharedSockets, scopedContext, socketLayer } from "./sharedSockets.ts"
import { processStartupJit, type StartupJit } from "./startupJit.ts"
import { unauthenticatedWarning } from "./unauthenticatedWarning.ts"

export type LogFormat = "text" | "json"

/** What a served replica exposes to the process around it. */
export interface Served {
  /** Its replicated state machine: the Raft node, the end of its replay, its snapshot before a stop. */
  readonly rsm: Pick<RsmShape<unknown>, "raft" | "replayed" | "snapshotBeforeStop">
  /** Service-specific gauges for the metrics endpoint (sessions, shard states...). */
  readonly gauges?: () => Readonly<Record<string, number>>
}

export interface ServeOptions {
  /** Names the service in logs and in the data directory: `<dataDir>/<service>/replica-<k>`. */
  readonly service: string
  /** Every replica's address, in replica order (replica k has Raft id k + 1). */
  readonly replicas: readonly string[]
  /** The replica to run; undefined runs every replica in this process (development). */
  readonly replica: number | undefined
  readonly dataDir: string
  readonly clusterKey: string | undefined
  /**
   * Every key the replicas accept, each with its role, their own first (see `serverKeyGrants`);
   * default: the cluster key alone, with every role.
   */
  readonly keys?: readonly KeyGrant[] | undefined
  readonly build: (
    replica: number,
    context: ReplicaContext,
  ) => Effect.Effect<Served, StorageCorrupt, Scope.Scope | RpcNode | Storage>
  /**
   * Where to bind when it is not the advertised address (etcd's --listen-peer-urls): a host keeps
   * each replica's advertised port; host:port needs one replica in this process. Undefined: bind
   * the advertised address itself.
   */
  readonly listen?: string | undefined
  /** The replica (an index into `replicas`) that should lead whenever it is up and holds the log. */
  readonly preferredLeader?: number | undefined
  /** Serve /metrics, /livez and /readyz for this process's replicas on 127.0.0.1 at this port. */
  readonly metricsPort?: number | undefined
  /** The IP address the metrics endpoint binds; 127.0.0.1 when undefined. */
  readonly metricsHost?: string | undefined
  /**
   * This service's name on the wire when its replicas may share sockets with other services'
   * (a shard group's gid): its methods and Raft messages travel as `name@scope`.
   */
  readonly scope?: string | undefined
  /**
   * The process's sockets by address, for services whose replicas share addresses (shard groups
   * given one address per host); undefined: every replica binds its own.
   */
  readonly sockets?: SharedSockets | undefined
  /**
   * Where the replicas' Raft state lives; default a write-ahead log per replica under `dataDir`
   * (Storage.layerFile). Several services in one process pass one shared layer (Storage.layerShared).
   */
  readonly storage?: Layer.Layer<Storage> | undefined
  /**
   * One loop of Ready rounds for the Raft nodes of several services in one process (shard groups
   * co-hosted by one process), so their batches are written and sent together; default a loop per node.
   */
  readonly readyRounds?: ReadyRoundsShape | undefined
  /** The JIT policy raised while the replicas replay their logs; default the process's own. */
  readonly startupJit?: StartupJit | undefined
  /** The replicas' metric sources are added here, for a metrics endpoint the caller serves for several services. */
  readonly metricsSources?: MetricsSource[] | undefined
  /**
   * Run one new member that joins the existing group (etcd's `--initial-cluster-state existing`)
   * instead of a replica of `replicas`: its own id and address, not in cluster.toml.
   */
  readonly join?: JoinOptions | undefined
}

export interface JoinOptions {
  /** The new member's id: never a bootstrap replica's, never one the group used before. */
  readonly id: number
  /** Its `host:port`, where the group reaches it (and where it binds unless `listen` says otherwise). */
  readonly address: string
  /** Members to ask where the group is; default the group's replicas in cluster.toml. */
  readonly contacts?: readonly string[] | undefined
}

export interface ReplicaContext {
  readonly id: number
  readonly peers: Readonly<Record<number, string>>
  readonly storageName: string
  /** Pass to the Raft node: this replica joins an existing group instead of bootstrapping one. */
  readonly join: boolean
  /** Pass to the Raft node: feeds the fsync latency histogram. */
  readonly onFsync: (seconds: number) => void
  /** Pass to the Raft node: the address of the replica that should lead (cluster.toml's preferredLeader), if any. */
  readonly preferredLeader: string | undefined
}

export class StartupError extends Error {
  override readonly name = "StartupError"
}

export const loggerLayer = (format: LogFormat) =>
  Logger.layer([format === "json" ? Logger.consoleJson : Logger.consoleLogFmt])

const peersOf = (replicas: readonly string[]): Record<number, string> =>
  Object.fromEntries(replicas.map((address, k) => [k + 1, address]))

const describeFailure = (error: TransportError | StorageCorrupt, advertised: string, bind: string): string =>
  error._tag === "TransportError"
    ? `cannot bind UDP ${bind}: ${error.message}${bind === advertised ? hintFor(advertised) : ""}`
    : `data directory is damaged: ${error.message} (refusing to start; restore it from a backup or remove the replica's directory to rebuild it from its peers)`

const hintFor = (advertised: string): string => {
  const hint = advertisedNotLocalHint(advertised, localAddresses())
  return hint === undefined ? "" : ` (${hint})`
}

/**
 * Runs replicas of one service until SIGINT or SIGTERM. On the signal a leader first hands off
 * leadership (so clients see no election timeout), then everything is closed: sockets, storage.
 */
export const serveReplicas = (options: ServeOptions): Effect.Effect<void, StartupError, Scope.Scope> =>
  Effect.gen(function* () {
    // A mistyped flag is said before anything touches the data directory.
    const metricsProblem =
      options.metricsPort === undefined ? undefined : metricsHostProblem(options.metricsHost ?? DEFAULT_METRICS_HOST)
    if (metricsProblem !== undefined) return yield* Effect.fail(new StartupError(metricsProblem))
    const bootstrap = peersOf(options.replicas)
    const bootstrapIds = Object.keys(bootstrap).map(Number)
    const join = options.join
    const which =
      join !== undefined
        ? [options.replicas.length]
        : options.replica === undefined
          ? options.replicas.map((_, k) => k)
          : [options.replica]
    if (join !== undefined) {
      if (options.replica !== undefined) {
        return yield* Effect.fail(
          new StartupError("--join starts a new member (with --id and --address); it does not take --replica"),
        )
      }
      if (!Number.isInteger(join.id) || join.id < 1 || bootstrapIds.includes(join.id)) {
        return yield* Effect.fail(
          new StartupError(
            `--id ${join.id}: a new member needs an id of its own, above the bootstrap replicas' ids 1..${options.replicas.length} (ids are single-use)`,
          ),
        )
      }
    } else {
      for (const k of which) {
        if (k < 0 || k >= options.replicas.length) {
          return yield* Effect.fail(
            new StartupError(
              `${options.service} has replicas 0..${options.replicas.length - 1}; there is no replica ${k}`,
            ),
          )
        }
      }
    }
    const addressOf = (k: number): string => (join !== undefined ? join.address : (options.replicas[k] as string))
    const nameOf = (k: number): string => (join !== undefined ? `member ${join.id}` : `replica ${k}`)
    const bindOf = new Map<number, string>()
    if (options.listen !== undefined && which.length > 1 && listenPort(options.listen) !== undefined) {
      return yield* Effect.fail(
        new StartupError(
          `--listen ${options.listen} names one port, but this process runs ${which.length} replicas: give a host alone (each replica keeps its advertised port), or run one with --replica`,
        ),
      )
    }
    const local = options.listen === undefined ? [] : localAddresses()
    for (const k of which) {
      const resolved = resolveListen(options.listen, addressOf(k), local)
      if (!resolved.ok) {
        return yield* Effect.fail(
          new StartupError(`${options.service} ${nameOf(k)} (advertised ${addressOf(k)}): ${resolved.problem}`),
        )
      }
      bindOf.set(k, resolved.bind)
    }
    // Before binding, so the warning is printed even when the bind then fails.
    const warning = unauthenticatedWarning(options.service, which.map(addressOf), options.clusterKey)
    if (warning !== undefined) process.stderr.write(warning)
    const stop = yield* Deferred.make<string>()
    const again = yield* Deferred.make<void>()
    const clock = yield* Clock.Clock
    let firstSignalAt = Number.NaN
    const onSignal = (signal: string) => () => {
      const now = monotonicMs(clock)
      if (Deferred.doneUnsafe(stop, Exit.succeed(signal))) firstSignalAt = now
      // Ctrl-C reaches a process group at once, and a launcher may signal its children as well: a
      // signal right after the first is the same request.
      else if (now - firstSignalAt >= SAME_STOP_MS) Deferred.doneUnsafe(again, Exit.void)
    }
    const sigint = onSignal("SIGINT")
    const sigterm = onSignal("SIGTERM")
    process.on("SIGINT", sigint)
    process.on("SIGTERM", sigterm)
    // Started by `bun run cluster`: stop with it, even when it was killed without a chance to stop us.
    const parent = Number(process.env.KV_PARENT_PID)
    if (Number.isInteger(parent) && parent > 1) {
      yield* Effect.forkScoped(
        Effect.gen(function* () {
          while (isAlive(parent)) yield* Effect.sleep(Duration.millis(500))
          Deferred.doneUnsafe(stop, Exit.succeed("parent exited"))
        }),
      )
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        process.off("SIGINT", sigint)
        process.off("SIGTERM", sigterm)
      }),
    )

    // Before any replica restores its snapshot, which runs as the replica is built.
    const jitUntil = yield* (options.startupJit ?? processStartupJit).raiseUntil()
    yield* checkDisk(options.dataDir)
    const sources: MetricsSource[] = options.metricsSources ?? []
    const served = new Map<number, Served>()
    // Replicas in this process cannot answer each other before they run: ask only the others.
    const inProcess = new Set(which.map(addressOf))
    for (const k of which) {
      const address = addressOf(k)
      const bind = bindOf.get(k) ?? address
      const storageName =
        join !== undefined ? `${options.service}/member-${join.id}` : `${options.service}/replica-${k}`
      const socket = { bind, key: options.clusterKey, keys: options.keys }
      const storage = options.storage ?? Storage.layerFile(options.dataDir)
      const observe = observeReplica(options.service, k)
      const [replica, rpc] = yield* Effect.gen(function* () {
        yield* lockReplicaDir(options.dataDir, storageName).pipe(Effect.mapError((e) => new StartupError(e.message)))
        const sockets = options.sockets
        const node =
          sockets === undefined ? yield* Layer.build(socketLayer(socket)) : yield* sockets.node(address, socket)
        const own = scopedContext(Context.merge(node, yield* Layer.build(storage)), options.scope)
        const context = options.readyRounds === undefined ? own : Context.add(own, ReadyRounds, options.readyRounds)
        const rpc = Context.get(context, RpcNode)
        rpc.observeRequests(observe.onRequest)
        // The group's own replicas get replies of any size without proving their address first.
        rpc.trust(options.replicas)
        const start = yield* startingPoint({
          rpc,
          service: options.service,
          id: join?.id ?? k + 1,
          address,
          bootstrap,
          join,
          fresh: isEmptyDataDir(joinPath(options.dataDir, storageName)),
          contacts: (join?.contacts ?? options.replicas).filter((a) => !inProcess.has(a)),
        })
        rpc.trust(Object.values(start.peers))
        const replica = yield* options
          .build(k, {
            id: join?.id ?? k + 1,
            peers: start.peers,
            storageName,
            join: join !== undefined,
            onFsync: observe.onFsync,
            preferredLeader:
              options.preferredLeader === undefined ? undefined : options.replicas[options.preferredLeader],
          })
          .pipe(Effect.provideContext(context))
        return [replica, rpc] as const
      }).pipe(
        Effect.mapError((error) =>
          error instanceof StartupError
            ? new StartupError(`${options.service} ${nameOf(k)} (${address}): ${error.message}`)
            : new StartupError(
                `${options.service} ${nameOf(k)} (${address}): ${describeFailure(error, address, bind)}`,
              ),
        ),
      )
      served.set(k, replica)
      sources.push({
        service: options.service,
        replica: k,
        raft: replica.rsm.raft,
        rpc,
        ...(replica.gauges ? { gauges: replica.gauges } : {}),
      })
      yield* Effect.logInfo("replica started").pipe(
        Effect.annotateLogs(
          join !== undefined
            ? { service: options.service, member: join.id, address, ...(bind === address ? {} : { listen: bind }) }
            : { service: options.service, replica: k, address, ...(bind === address ? {} : { listen: bind }) },
        ),
      )
    }
    const replays = [...served.values()].map((replica) => replica.rsm.replayed)
    yield* Effect.forkScoped(jitUntil(Effect.all(replays, { concurrency: "unbounded", discard: true })))
    if (options.metricsPort !== undefined) {
      yield* startMetrics(options.metricsPort, options.metricsHost, sources)
    }
    const signal = yield* Deferred.await(stop)
    yield* Effect.logInfo("stopping").pipe(Effect.annotateLogs({ service: options.service, signal }))
    yield* Effect.forEach(
      served,
      ([k, replica]) =>
        handOffLeadership(replica.rsm.raft).pipe(
          Effect.andThen(snapshotForNextStart(replica, STOP_SNAPSHOT_MS)),
          Effect.annotateLogs({ service: options.service, replica: k }),
        ),
      { concurrency: "unbounded", discard: true },
    ).pipe(
      // A second signal stops at once: the snapshot is not needed, only faster for the next start.
      Effect.raceFirst(
        Deferred.await(again).pipe(Effect.andThen(Effect.logInfo("stopping at once, on a second signal"))),
      ),
    )
  })

interface StartingPoint {
  /** The addresses Raft starts with: the bootstrap replicas, or the group's members as a joiner learned them. */
  readonly peers: Readonly<Record<number, string>>
}

/**
 * Decides how a replica starts. With data it starts from its storage (the membership there wins).
 * With an empty data directory it first asks the group: a bootstrap replica whose id the group has
 * seen holding data, or has removed, refuses to start (it lost what it acknowledged); a joining
 * member learns where the current members are, since the group may have none of its bootstrap
 * replicas left. No answer: a bootstrap replica starts a new group as before; a joiner cannot join.
 */
/** Serves /metrics, /livez and /readyz for `sources` at host:port until the scope closes. */
export const startMetrics = (
  port: number,
  host: string | undefined,
  sources: readonly MetricsSource[],
): Effect.Effect<void, StartupError, Scope.Scope> =>
  Effect.gen(function* () {
    const bind = host ?? DEFAULT_METRICS_HOST
    const problem = metricsHostProblem(bind)
    if (problem !== undefined) return yield* Effect.fail(new StartupError(problem))
    const shown = bind.includes(":") ? `[${bind}]:${port}` : `${bind}:${port}`
    const server = yield* Effect.try({
      try: () => serveMetrics(port, sources, bind),
      catch: (error) => new StartupError(`cannot serve metrics on ${shown}: ${String(error)}`),
    })
    yield* Effect.addFinalizer(() => Effect.promise(() => server.stop(true)))
    yield* Effect.logInfo("metrics served").pipe(Effect.annotateLogs({ url: `http://${shown}/metrics` }))
  })

const startingPoint = (p: {
  readonly rpc: RpcNodeShape
  readonly service: string
  readonly id: number
  readonly address: string
  readonly bootstrap: Readonly<Record<number, string>>
  readonly join: JoinOptions | undefined
  readonly fresh: boolean
  readonly contacts: readonly string[]
}): Effect.Effect<StartingPoint, StartupError> =>
  Effect.gen(function* () {
    const withSelf = (peers: Readonly<Record<number, string>>) => ({ ...peers, [p.id]: p.address })
    if (!p.fresh || p.contacts.length === 0) return { peers: withSelf(p.bootstrap) }
    const answers = yield* askGroup(p.rpc, p.contacts, p.address)
    const bootstrapIds = Object.keys(p.bootstrap).map(Number)
    const problem = lostIdentityProblem(p.service, p.id, answers, bootstrapIds)
    if (problem !== undefined) return yield* Effect.fail(new StartupError(problem))
    if (p.join === undefined) return { peers: withSelf(p.bootstrap) }
    const latest = freshest(answers)
    if (latest === undefined) {
      return yield* Effect.fail(
        new StartupError(
          `no member of the group answered (asked ${p.contacts.join(", ")}): a new member joins a running group; ` +
            "start it once the group is up, or name current members with --peers",
        ),
      )
    }
    const peers: Record<number, string> = { ...p.bootstrap }
    for (const m of latest.members) if (m.address !== "") peers[m.id] = m.address
    if (!latest.members.some((m) => m.id === p.id)) {
      yield* Effect.logInfo(
        `member ${p.id} is not in the group yet: it waits until it is added (\`${commandsFor(p.service).admin} add ${p.id} ${p.address}\`, or \`replace\`)`,
      )
    }
    return { peers: withSelf(peers) }
  })

/**
 * Measures the data directory's disk once and warns in the log when it is too slow for Raft. The
 * probe starts now on a worker thread and is answered while the replicas start: its syncs do not
 * delay reading the snapshot.
 */
const checkDisk = (dataDir: string): Effect.Effect<void, never, Scope.Scope> =>
  Effect.suspend(() => {
    const probe = probeFsyncOffThread(dataDir).catch(() => undefined)
    return Effect.forkScoped(
      Effect.gen(function* () {
        const answer = yield* Effect.promise(() => probe)
        if (answer === undefined) return
        const warning = fsyncWarning(dataDir, answer, fsyncWarnThreshold())
        if (warning !== undefined) yield* Effect.logWarning(warning)
        else
          yield* Effect.logInfo("disk checked").pipe(
            Effect.annotateLogs({ fsyncP90Ms: Number(answer.p90Ms.toFixed(3)), dataDir }),
          )
      }),
    )
  }).pipe(Effect.asVoid)

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Signals this close to the first ask for the same stop; a later one asks to stop at once. */
const SAME_STOP_MS = 1_000

/** How long a stopping replica waits for its snapshot before it exits without. */
const STOP_SNAPSHOT_MS = 30_000

/**
 * A stopping replica's snapshot, so that its next start restores instead of replaying its log's
 * tail (three quarters of a restart's CPU with a tail at the snapshot budget). Bounded: a stop must
 * end, and the replica starts correctly without it.
 */
const snapshotForNextStart = (replica: Served, capMs: number): Effect.Effect<void> =>
  Effect.gen(function* () {
    const [took, index] = yield* replica.rsm.snapshotBeforeStop.pipe(
      Effect.timeoutOption(Duration.millis(capMs)),
      Effect.timed,
    )
    if (Option.isNone(index)) {
      yield* Effect.logWarning(`no snapshot for the next start within ${capMs / 1000} s; it will replay its log`)
    } else if (index.value !== undefined) {
      yield* Effect.logInfo("snapshot taken for the next start").pipe(
        Effect.annotateLogs({ index: index.value, ms: Math.round(Duration.toMillis(took)) }),
      )
    }
  })

/** What a hand-off needs of a Raft node. */
export interface HandOffTarget {
  status(): { readonly id: number; readonly role: string; readonly leader: number }
  transferLeadership(): Effect.Effect<void, unknown>
}

/**
 * A leader transfers leadership before stopping and waits (bounded) until it has happened: until
 * another node leads, not only until this one stepped down. Stepping down is the target's vote
 * request arriving; the vote it needs (with another replica down, the only one it can get) leaves
 * after this node's write of it, and a process that exits at the first sight of "follower" could
 * take it along and leave the group without a leader.
 */
export const handOffLeadership = (raft: HandOffTarget): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (raft.status().role !== "leader") return
    const transferred = yield* raft.transferLeadership().pipe(
      Effect.as(true),
      Effect.orElseSucceed(() => false),
    )
    if (!transferred) return
    const handedOver = () => {
      const s = raft.status()
      return s.role !== "leader" && s.leader !== 0 && s.leader !== s.id
    }
    // At most about 2 s: the new leader usually takes over within a few heartbeats.
    for (let polls = 0; polls < 100 && !handedOver(); polls++) yield* Effect.sleep(Duration.millis(20))
    yield* Effect.logInfo("leadership handed off").pipe(Effect.annotateLogs({ leader: raft.status().leader }))
  })

/**
 * The entry point of a server binary: runs `program` with the chosen logger, prints a clear
 * message and exits 1 if it fails to start, exits 0 after a clean stop.
 */
export const runServerMain = (
  name: string,
  program: Effect.Effect<void, StartupError, Scope.Scope>,
  format: LogFormat,
) => {
  Effect.runPromiseExit(Effect.scoped(program).pipe(Effect.provide(loggerLayer(format)))).then((exit) => {
    if (Exit.isSuccess(exit)) process.exit(0)
    const failure = Cause.findErrorOption(exit.cause)
    if (failure._tag === "Some") console.error(`${name}: ${failure.value.message}`)
    else console.error(`${name}: ${Cause.pretty(exit.cause)}`)
    process.exit(1)
  })
}
