import { type RaftNodeShape, Storage, type StorageCorrupt } from "@kv/raft"
import { RpcNode, Transport, type TransportError } from "@kv/rpc"
import { Cause, Context, Deferred, Duration, Effect, Exit, Layer, Logger, type Scope } from "effect"
import { type MetricsSource, observeReplica, serveMetrics } from "./metrics.ts"
import { unauthenticatedWarning } from "./unauthenticatedWarning.ts"

export type LogFormat = "text" | "json"

/** What a served replica exposes to the process around it. */
export interface Served {
  readonly raft: RaftNodeShape
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
  readonly build: (
    replica: number,
    context: ReplicaContext,
  ) => Effect.Effect<Served, StorageCorrupt, Scope.Scope | RpcNode | Storage>
  /** Serve /metrics, /livez and /readyz for this process's replicas on 127.0.0.1 at this port. */
  readonly metricsPort?: number | undefined
}

export interface ReplicaContext {
  readonly id: number
  readonly peers: Readonly<Record<number, string>>
  readonly storageName: string
  /** Pass to the Raft node: feeds the fsync latency histogram. */
  readonly onFsync: (seconds: number) => void
}

export class StartupError extends Error {
  override readonly name = "StartupError"
}

export const loggerLayer = (format: LogFormat) =>
  Logger.layer([format === "json" ? Logger.consoleJson : Logger.consoleLogFmt])

const peersOf = (replicas: readonly string[]): Record<number, string> =>
  Object.fromEntries(replicas.map((address, k) => [k + 1, address]))

const describeFailure = (error: TransportError | StorageCorrupt): string =>
  error._tag === "TransportError"
    ? `cannot bind UDP ${error.address}: ${error.message}`
    : `data directory is damaged: ${error.message} (refusing to start; restore it from a backup or remove the replica's directory to rebuild it from its peers)`

/**
 * Runs replicas of one service until SIGINT or SIGTERM. On the signal a leader first hands off
 * leadership (so clients see no election timeout), then everything is closed: sockets, storage.
 */
export const serveReplicas = (options: ServeOptions): Effect.Effect<void, StartupError, Scope.Scope> =>
  Effect.gen(function* () {
    const peers = peersOf(options.replicas)
    const which = options.replica === undefined ? options.replicas.map((_, k) => k) : [options.replica]
    for (const k of which) {
      if (k < 0 || k >= options.replicas.length) {
        return yield* Effect.fail(
          new StartupError(
            `${options.service} has replicas 0..${options.replicas.length - 1}; there is no replica ${k}`,
          ),
        )
      }
    }
    // Before binding, so the warning is printed even when the bind then fails.
    const warning = unauthenticatedWarning(
      options.service,
      which.map((k) => options.replicas[k] as string),
      options.clusterKey,
    )
    if (warning !== undefined) process.stderr.write(warning)
    const stop = yield* Deferred.make<string>()
    const onSignal = (signal: string) => () => Deferred.doneUnsafe(stop, Exit.succeed(signal))
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

    const sources: MetricsSource[] = []
    const served = new Map<number, Served>()
    for (const k of which) {
      const address = options.replicas[k]!
      const layer = RpcNode.layer.pipe(
        Layer.provide(Transport.layerUdp({ bind: address, key: options.clusterKey })),
        Layer.merge(Storage.layerFile(options.dataDir)),
      )
      const observe = observeReplica(options.service, k)
      const [replica, rpc] = yield* Effect.gen(function* () {
        const context = yield* Layer.build(layer)
        const rpc = Context.get(context, RpcNode)
        rpc.observeRequests(observe.onRequest)
        // The group's own replicas get replies of any size without proving their address first.
        rpc.trust(options.replicas)
        const replica = yield* options
          .build(k, { id: k + 1, peers, storageName: `${options.service}/replica-${k}`, onFsync: observe.onFsync })
          .pipe(Effect.provideContext(context))
        return [replica, rpc] as const
      }).pipe(
        Effect.mapError(
          (error) => new StartupError(`${options.service} replica ${k} (${address}): ${describeFailure(error)}`),
        ),
      )
      served.set(k, replica)
      sources.push({
        service: options.service,
        replica: k,
        raft: replica.raft,
        rpc,
        ...(replica.gauges ? { gauges: replica.gauges } : {}),
      })
      yield* Effect.logInfo("replica started").pipe(
        Effect.annotateLogs({ service: options.service, replica: k, address }),
      )
    }
    if (options.metricsPort !== undefined) {
      const port = options.metricsPort
      const server = yield* Effect.try({
        try: () => serveMetrics(port, sources),
        catch: (error) => new StartupError(`cannot serve metrics on 127.0.0.1:${port}: ${String(error)}`),
      })
      yield* Effect.addFinalizer(() => Effect.promise(() => server.stop(true)))
      yield* Effect.logInfo("metrics served").pipe(Effect.annotateLogs({ url: `http://127.0.0.1:${port}/metrics` }))
    }
    const signal = yield* Deferred.await(stop)
    yield* Effect.logInfo("stopping").pipe(Effect.annotateLogs({ service: options.service, signal }))
    yield* Effect.forEach(
      served,
      ([k, { raft }]) => handOffLeadership(raft).pipe(Effect.annotateLogs({ service: options.service, replica: k })),
      { concurrency: "unbounded", discard: true },
    )
  })

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** A leader transfers leadership before stopping and waits (bounded) until it has happened. */
const handOffLeadership = (raft: RaftNodeShape): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (raft.status().role !== "leader") return
    const transferred = yield* raft.transferLeadership().pipe(
      Effect.as(true),
      Effect.orElseSucceed(() => false),
    )
    if (!transferred) return
    // At most about 2 s: the new leader usually takes over within a few heartbeats.
    for (let polls = 0; polls < 100 && raft.status().role === "leader"; polls++)
      yield* Effect.sleep(Duration.millis(20))
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
