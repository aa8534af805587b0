import type { Started } from "../lib/processes.ts"
import type { ClientSpec } from "../plan.ts"

/** A cluster under test, started on loopback with its own temporary data directories. */
export interface RunningTarget {
  readonly name: string
  readonly client: ClientSpec
  /** Every server process, named (e.g. `replica-0`, `etcd-1`), for CPU accounting. */
  readonly processes: readonly Started[]
  /** Stops every process and removes the data directories. */
  stop(): Promise<void>
  /** Environment of the load process that drives this target (the servers' injected faults). */
  readonly loadEnv?: Readonly<Record<string, string>>
  /** Cumulative fsyncs and datagrams per server process, where the servers export them. */
  serverCounters?(): Promise<Record<string, ServerCounters>>
}

export interface ServerCounters {
  /** Durable writes (a shared log's flushes where the process has one) and their seconds. */
  readonly count: number
  readonly seconds: number
  /** Datagrams sent by every transport of the process (`kv_transport_datagrams_sent_total`). */
  readonly datagramsSent: number
}

/**
 * Reads `kv_raft_fsync_seconds` (count and sum) and the datagrams sent from a kv server's
 * Prometheus endpoint. Undefined when it does not answer (the figure is then left out, not guessed).
 */
export const scrapeServerCounters = async (metricsPort: number): Promise<ServerCounters | undefined> => {
  try {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    const sum = (name: string) =>
      text
        .split("\n")
        .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
        .reduce((total, line) => total + Number(line.slice(line.lastIndexOf(" ") + 1)), 0)
    // A shared write-ahead log flushes once for the waits of several replicas: count its flushes.
    const datagramsSent = sum("kv_transport_datagrams_sent_total")
    const sharedFlushes = sum("kv_shared_wal_flush_seconds_count")
    if (sharedFlushes > 0) {
      return { count: sharedFlushes, seconds: sum("kv_shared_wal_flush_seconds_sum"), datagramsSent }
    }
    return { count: sum("kv_raft_fsync_seconds_count"), seconds: sum("kv_raft_fsync_seconds_sum"), datagramsSent }
  } catch {
    return undefined
  }
}

/** `serverCounters` of a target: every named server's counters that answered. */
export const serverCountersOf =
  (servers: readonly { readonly name: string; readonly metricsPort: number }[]) =>
  async (): Promise<Record<string, ServerCounters>> => {
    const counters: Record<string, ServerCounters> = {}
    const scraped = await Promise.all(servers.map((s) => scrapeServerCounters(s.metricsPort)))
    scraped.forEach((c, n) => {
      if (c !== undefined) counters[servers[n]!.name] = c
    })
    return counters
  }

export interface Target {
  readonly name: string
  /** Undefined when it can run here; otherwise why it is skipped. */
  unavailable(): string | undefined
  start(): Promise<RunningTarget>
}

/**
 * Servers get this long after SIGTERM before SIGKILL: their data is thrown away, so a kvraft
 * leader's hand-off on shutdown is not waited for. A profiled process needs longer to write its
 * profile on exit (with 500 ms a loaded machine lost some of them).
 */
export const STOP_GRACE_MS = process.env.KV_BENCH_PROFILE === undefined ? 500 : 5_000

export const repoRoot = new URL("../..", import.meta.url).pathname.replace(/\/$/, "")

/** Polls `ready` every 100 ms until it answers true, or fails with `what` after `timeoutMs`. */
export const waitFor = async (what: string, ready: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await ready().catch(() => false)) return
    await Bun.sleep(100)
  }
  throw new Error(`timed out waiting for ${what}`)
}
