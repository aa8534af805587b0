import { isIP } from "node:net"
import type { RaftNodeShape } from "@kv/raft"
import { dropReasons, type RpcNodeShape, roles } from "@kv/rpc"
import { Context, Effect, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"

/** One replica as the metrics endpoint sees it. */
export interface MetricsSource {
  readonly service: string
  readonly replica: number
  readonly raft: RaftNodeShape
  readonly rpc: RpcNodeShape
  /** Service-specific gauges (sessions, shard states...), read at scrape time. */
  readonly gauges?: () => Readonly<Record<string, number>>
}

const latencyBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

const fsyncHelp = {
  name: "kv_raft_fsync_seconds",
  description: "Duration of one durable write of Raft state (one per Ready batch)",
}
const requestHelp = {
  name: "kv_request_seconds",
  description: "Time from a client request's arrival to its reply, by method",
}

/**
 * One series of a histogram, updated in place: its attributes are fixed at creation, so an update
 * finds its series by a key computed once, with no fiber and no attribute merging (both ran on
 * every request before, a fiber and a JSON key per reply on a busy leader).
 */
const series = (help: { readonly name: string; readonly description: string }, attributes: Record<string, string>) => {
  const metric = Metric.histogram(help.name, {
    description: help.description,
    boundaries: latencyBoundaries,
    attributes,
  })
  const context = Context.empty()
  return (seconds: number) => metric.updateUnsafe(seconds, context)
}

const gauge = (name: string, description: string) => Metric.gauge(name, { description })
const raftGauges = {
  term: gauge("kv_raft_term", "Current Raft term"),
  leader: gauge("kv_raft_is_leader", "1 if this replica is the leader"),
  commit: gauge("kv_raft_commit_index", "Highest log index known committed"),
  applied: gauge("kv_raft_applied_index", "Highest log index applied to the state machine"),
  stateBytes: gauge("kv_raft_state_bytes", "Persisted Raft state (hard state + log after the snapshot)"),
  snapshotBytes: gauge("kv_raft_snapshot_bytes", "Size of the latest snapshot"),
  proposals: gauge("kv_raft_proposals_total", "Commands proposed on this replica while leader"),
  messages: gauge("kv_raft_messages_sent_total", "Raft messages sent to peers"),
}
const transportGauges = {
  datagramsSent: gauge("kv_transport_datagrams_sent_total", "UDP datagrams sent"),
  datagramsReceived: gauge("kv_transport_datagrams_received_total", "UDP datagrams received"),
  bytesSent: gauge("kv_transport_bytes_sent_total", "UDP bytes sent"),
  bytesReceived: gauge("kv_transport_bytes_received_total", "UDP bytes received"),
  dropped: gauge("kv_transport_dropped_datagrams_total", "Datagrams dropped, by reason"),
  refused: gauge(
    "kv_rpc_refused_total",
    "Requests refused with PermissionDenied, by the role of the caller's key (one-way messages under a client key count as dropped, reason forbidden)",
  ),
}
const extraGauges = new Map<string, Metric.Gauge<number>>()

/** Hooks for the hot-path histograms of one replica. */
export const observeReplica = (service: string, replica: number) => {
  const attributes = { service, replica: String(replica) }
  const requests = new Map<string, (seconds: number) => void>()
  return {
    onFsync: series(fsyncHelp, attributes),
    onRequest: (method: string, seconds: number) => {
      let observe = requests.get(method)
      if (observe === undefined) {
        observe = series(requestHelp, { ...attributes, method })
        requests.set(method, observe)
      }
      observe(seconds)
    },
  }
}

const set = (metric: Metric.Gauge<number>, attributes: Record<string, string>, value: number) =>
  Metric.update(Metric.withAttributes(metric, attributes), value)

/** Samples every replica's state into the registry, then renders the Prometheus text format. */
export const scrape = (sources: readonly MetricsSource[]): string => {
  // A socket several groups' replicas share is counted once, under the first of them.
  const socketsSeen = new Set<unknown>()
  for (const source of sources) {
    const a = { service: source.service, replica: String(source.replica) }
    const s = source.raft.status()
    const c = source.raft.counters()
    const t = source.rpc.transport.stats
    const socketCounted = socketsSeen.has(t)
    socketsSeen.add(t)
    Effect.runSync(
      Effect.all(
        [
          set(raftGauges.term, a, s.term),
          set(raftGauges.leader, a, s.role === "leader" ? 1 : 0),
          set(raftGauges.commit, a, s.commitIndex),
          set(raftGauges.applied, a, s.appliedIndex),
          set(raftGauges.stateBytes, a, s.raftStateBytes),
          set(raftGauges.snapshotBytes, a, s.snapshotBytes),
          set(raftGauges.proposals, a, c.proposals),
          set(raftGauges.messages, a, c.messagesSent),
          ...(socketCounted
            ? []
            : [
                set(transportGauges.datagramsSent, a, t.datagramsSent),
                set(transportGauges.datagramsReceived, a, t.datagramsReceived),
                set(transportGauges.bytesSent, a, t.bytesSent),
                set(transportGauges.bytesReceived, a, t.bytesReceived),
                ...dropReasons.map((reason) => set(transportGauges.dropped, { ...a, reason }, t.drops[reason])),
                ...roles.map((role) =>
                  set(transportGauges.refused, { ...a, reason: "PermissionDenied", role }, t.refused[role]),
                ),
              ]),
          ...Object.entries(source.gauges?.() ?? {}).map(([name, value]) => {
            let metric = extraGauges.get(name)
            if (metric === undefined) {
              metric = gauge(name, name.replaceAll("_", " "))
              extraGauges.set(name, metric)
            }
            return set(metric, a, value)
          }),
        ],
        { discard: true },
      ),
    )
  }
  return PrometheusMetrics.formatUnsafe(Context.empty())
}

/** Where the metrics endpoint binds unless `--metrics-host` says otherwise: this host alone. */
export const DEFAULT_METRICS_HOST = "127.0.0.1"

/** Why `host` cannot be bound for metrics (a name, not an IP address), or undefined. */
export const metricsHostProblem = (host: string): string | undefined =>
  isIP(host) === 0
    ? `--metrics-host ${host}: give an IP address to bind (0.0.0.0 for every interface, 127.0.0.1 for this host only)`
    : undefined

/**
 * HTTP for operators: `/metrics` (Prometheus text), `/livez` (the process runs), `/readyz` (every
 * replica here knows a leader, so it can serve or redirect clients). `host` is an IP address to
 * bind: 0.0.0.0 in a container, so that probes and a Prometheus elsewhere reach it.
 */
export const serveMetrics = (port: number, sources: readonly MetricsSource[], host = DEFAULT_METRICS_HOST) =>
  Bun.serve({
    hostname: host,
    port,
    fetch(request) {
      const path = new URL(request.url).pathname
      if (path === "/metrics") {
        return new Response(scrape(sources), { headers: { "content-type": "text/plain; version=0.0.4" } })
      }
      if (path === "/livez") return new Response("ok\n")
      if (path === "/readyz") {
        const waiting = sources.filter((s) => s.raft.status().leader === 0)
        return waiting.length === 0
          ? new Response("ok\n")
          : new Response(`no leader known to replica ${waiting.map((s) => s.replica).join(", ")}\n`, { status: 503 })
      }
      return new Response("not found: try /metrics, /livez or /readyz\n", { status: 404 })
    },
  })
