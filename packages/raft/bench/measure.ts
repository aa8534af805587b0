/**
 * The measuring side of the commit benchmark: proposers that loop propose → applied on the leader,
 * latency percentiles, and CPU time of a process. Shared by the in-process and multi-process runs.
 */
import { readFileSync } from "node:fs"
import type { ApplyEvent, RaftNodeShape } from "../src/index.ts"

export interface CommitFigures {
  readonly concurrency: number
  readonly commits: number
  readonly seconds: number
  readonly commitsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Commands that were refused (leadership lost mid-run); a healthy run has none. */
  readonly refused: number
}

/**
 * Resolves proposers when their index is applied. Fed from the node's apply callback, which runs
 * before the node exists, hence the separate object.
 */
export class AppliedWaiters {
  private readonly waiting = new Map<number, { term: number; resolve: (ok: boolean) => void }>()

  readonly onApply = (event: ApplyEvent): void => {
    if (event.type !== "entries") return
    for (const entry of event.entries) {
      const waiter = this.waiting.get(entry.index)
      if (waiter === undefined) continue
      this.waiting.delete(entry.index)
      waiter.resolve(entry.term === waiter.term)
    }
  }

  wait(index: number, term: number): Promise<boolean> {
    return new Promise((resolve) => this.waiting.set(index, { term, resolve }))
  }

  /** Releases everything still waiting (as not committed), e.g. when the run's time is up. */
  failAll(): void {
    for (const waiter of this.waiting.values()) waiter.resolve(false)
    this.waiting.clear()
  }
}

export const percentile = (sorted: readonly number[], p: number): number =>
  sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0)

/**
 * `concurrency` proposers on the leader, each proposing its next command as soon as its previous
 * one is applied, for `seconds` after `warmupSeconds` of unmeasured load.
 */
export const runProposers = async (
  node: RaftNodeShape,
  waiters: AppliedWaiters,
  options: {
    readonly concurrency: number
    readonly seconds: number
    readonly warmupSeconds: number
    readonly commandBytes: number
  },
): Promise<CommitFigures> => {
  const command = new Uint8Array(options.commandBytes).fill(0x61)
  const latencies: number[] = []
  let refused = 0
  const measureFrom = performance.now() + options.warmupSeconds * 1000
  const until = measureFrom + options.seconds * 1000
  const proposer = async () => {
    while (performance.now() < until) {
      const start = performance.now()
      const proposed = node.proposeUnsafe(command)
      if (!("index" in proposed)) {
        refused++
        // Not the leader (any more): wait a little instead of spinning on the refusal.
        await Bun.sleep(10)
        continue
      }
      const committed = await waiters.wait(proposed.index, proposed.term)
      const end = performance.now()
      if (!committed) refused++
      else if (start >= measureFrom && end <= until) latencies.push(end - start)
    }
  }
  const timer = setTimeout(() => waiters.failAll(), until - performance.now() + 5_000)
  await Promise.all(Array.from({ length: options.concurrency }, proposer))
  clearTimeout(timer)
  latencies.sort((a, b) => a - b)
  return {
    concurrency: options.concurrency,
    commits: latencies.length,
    seconds: options.seconds,
    commitsPerSecond: Math.round(latencies.length / options.seconds),
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    refused,
  }
}

/** User + system CPU seconds a process has used so far (Linux /proc; 100 ticks per second). */
export const cpuSecondsOf = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command name (field 2) may contain spaces; fields after it start past the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return Number.NaN
  }
}
