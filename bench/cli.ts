/**
 * The command line of `bun run bench`: workloads by name (`bun run bench cas-incr list100`) or with
 * `--workloads`, the matrix's dimensions, targets and rounds. Parsing is pure so it can be tested;
 * run.ts prints the usage and exits on a `UsageError`.
 */
import {
  basicWorkloads,
  coordinationWorkloads,
  fullMatrix,
  isWorkload,
  type Matrix,
  quickMatrix,
  quickShardedMatrix,
  type Workload,
} from "./plan.ts"

export const usage = `usage: bun run bench [WORKLOAD ...] [--quick] [--out DIR] [--targets kvraft,etcd,shardkv-1,shardkv-3,shardkv-3-hosts,shardkv-3-hosts-shared-wal,shardkv-3-hosts-shared,
                                 shardkv-3-hosts-one-leader]
                     [--workloads ${[...basicWorkloads, ...coordinationWorkloads].join(",")}]
                     [--concurrency 1,16,64,256] [--sizes 100,4096] [--counters 1,64]
                     [--watchers 1000] [--write-rate 1000,max]
                     [--seconds N] [--warmup N] [--target-warmup N] [--keys 1000] [--max-raft-state BYTES]
                     [--rounds N]   run the targets in turn N times; each cell reports its median round
                                    by ops/s, and latency over every round's operations
                     [--loss FRACTION] [--dup FRACTION]   also run kvraft with that fraction of datagrams
                                    dropped (or sent twice) inside every kv transport, servers' and the
                                    load's (KV_NET_LOSS / KV_NET_DUP), beside the lossless kvraft; etcd
                                    and the sharded targets are not injected

workloads (default: ${basicWorkloads.join(",")}; name them as arguments or with --workloads):
  put, get, mixed  a uniformly random key of --keys preloaded ones (mixed: half gets, half puts)
  append           each worker appends to its own key (etcd: get + Txn on mod_revision)
  cas-incr         read a counter (getEntry), put value + 1 if its mod revision is unchanged, again on
                   conflict (etcd: get + Txn); 64 workers over 1 and over 64 counters (--counters);
                   reports successful increments/s and the conflict rate, then checks every counter
                   against the acknowledged increments (a mismatch fails the run)
  list100          list the 100 keys (100 B values) under one of 100 prefixes of a preloaded 10,000
                   (etcd: prefix Range with limit 100); each listing is checked
  watch            --watchers watchers (default 1,000) over 100 prefixes (10 per prefix), 16 writers
                   putting 100 B values to the watched prefixes at each --write-rate (writes/s in all,
                   max = as fast as answered; default 1000 and max); etcd: its Watch API. Reports
                   events delivered/s over all watchers, delivery latency from the put's answer, and
                   writes/s; then checks every watcher got every write of its prefix once, in order
  --concurrency sets the workers of every workload (default 1,16,64,256; cas-incr and list100 64;
  watch's writers 16)`

/** A command line that cannot be run: the message says why. */
export class UsageError extends Error {}

export interface BenchArgs {
  readonly quick: boolean
  readonly out: string | undefined
  readonly targets: readonly string[] | undefined
  readonly rounds: number
  readonly keys: number
  readonly maxRaftStateBytes: number | undefined
  /** Fractions of datagrams to drop (`--loss`) and to duplicate (`--dup`) in an extra kvraft run each. */
  readonly lossRate: number | undefined
  readonly dupRate: number | undefined
  /** The cells for kvraft and etcd (and the sharded clusters in a full run). */
  readonly matrix: Matrix
  /** The cells for the sharded clusters: a quick run gives them put and get at 64 only, unless told otherwise. */
  readonly shardedMatrix: Matrix
}

const valueFlags = [
  "--out",
  "--targets",
  "--workloads",
  "--concurrency",
  "--sizes",
  "--counters",
  "--seconds",
  "--warmup",
  "--target-warmup",
  "--keys",
  "--max-raft-state",
  "--rounds",
  "--watchers",
  "--write-rate",
  "--loss",
  "--dup",
] as const
type ValueFlag = (typeof valueFlags)[number]
const isValueFlag = (arg: string): arg is ValueFlag => (valueFlags as readonly string[]).includes(arg)

const list = (flag: string, text: string): string[] => {
  const items = text.split(",").filter((s) => s !== "")
  if (items.length === 0) throw new UsageError(`${flag} needs at least one value`)
  return items
}

const positiveIntegers = (flag: string, text: string): number[] =>
  list(flag, text).map((item) => {
    const n = Number(item)
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} takes positive integers, got ${item}`)
    return n
  })

const seconds = (flag: string, text: string): number => {
  const n = Number(text)
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${flag} takes a number of seconds, got ${text}`)
  return n
}

const fraction = (flag: string, text: string): number => {
  const n = Number(text)
  if (!Number.isFinite(n) || n <= 0 || n >= 1) throw new UsageError(`${flag} takes a fraction in (0, 1), got ${text}`)
  return n
}

/** Writes/s over all writers, or `max` (0): as fast as the store answers. */
const writeRates = (text: string): number[] =>
  list("--write-rate", text).map((item) => {
    if (item === "max") return 0
    const n = Number(item)
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--write-rate takes positive integers or max, got ${item}`)
    return n
  })

const workloadList = (names: readonly string[]): Workload[] =>
  names.map((name) => {
    if (!isWorkload(name))
      throw new UsageError(
        `unknown workload ${name}; workloads: ${[...basicWorkloads, ...coordinationWorkloads].join(", ")}`,
      )
    return name
  })

export const parseBenchArgs = (argv: readonly string[]): BenchArgs => {
  const values = new Map<ValueFlag, string>()
  const named: string[] = []
  let quick = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--help" || arg === "-h") continue
    if (arg === "--quick") quick = true
    else if (isValueFlag(arg)) {
      const value = argv[i + 1]
      if (value === undefined || value.startsWith("--")) throw new UsageError(`${arg} needs a value`)
      values.set(arg, value)
      i++
    } else if (!arg.startsWith("-")) named.push(arg)
    else throw new UsageError(`unknown argument ${arg}`)
  }
  const flag = (name: ValueFlag) => values.get(name)
  const fromFlag = flag("--workloads") === undefined ? [] : list("--workloads", flag("--workloads")!)
  const chosenWorkloads = [...new Set(workloadList([...named, ...fromFlag]))]
  const concurrency =
    flag("--concurrency") === undefined ? undefined : positiveIntegers("--concurrency", flag("--concurrency")!)
  const one = (name: ValueFlag, fallback: number | undefined) => {
    if (flag(name) === undefined) return fallback
    const [n, ...rest] = positiveIntegers(name, flag(name)!)
    if (rest.length > 0) throw new UsageError(`${name} takes one positive integer, got ${flag(name)}`)
    return n
  }
  const chosen = (base: Matrix): Matrix => ({
    workloads: chosenWorkloads.length > 0 ? chosenWorkloads : base.workloads,
    concurrency: concurrency ?? base.concurrency,
    coordinationConcurrency: concurrency ?? base.coordinationConcurrency,
    watchWriters: concurrency ?? base.watchWriters,
    watchers: one("--watchers", base.watchers)!,
    writeRates: flag("--write-rate") === undefined ? base.writeRates : writeRates(flag("--write-rate")!),
    valueBytes: flag("--sizes") === undefined ? base.valueBytes : positiveIntegers("--sizes", flag("--sizes")!),
    counters: flag("--counters") === undefined ? base.counters : positiveIntegers("--counters", flag("--counters")!),
    targetWarmupSeconds:
      flag("--target-warmup") === undefined
        ? base.targetWarmupSeconds
        : seconds("--target-warmup", flag("--target-warmup")!),
    warmupSeconds: flag("--warmup") === undefined ? base.warmupSeconds : seconds("--warmup", flag("--warmup")!),
    seconds: flag("--seconds") === undefined ? base.seconds : seconds("--seconds", flag("--seconds")!),
  })
  return {
    quick,
    out: flag("--out"),
    targets: flag("--targets") === undefined ? undefined : list("--targets", flag("--targets")!),
    // This machine's disk and cores are shared: a target measured minutes after another can see a
    // different machine. Alternating rounds and taking each cell's median round compares like with like.
    rounds: one("--rounds", 1)!,
    keys: one("--keys", 1000)!,
    maxRaftStateBytes: one("--max-raft-state", undefined),
    lossRate: flag("--loss") === undefined ? undefined : fraction("--loss", flag("--loss")!),
    dupRate: flag("--dup") === undefined ? undefined : fraction("--dup", flag("--dup")!),
    matrix: chosen(quick ? quickMatrix : fullMatrix),
    shardedMatrix: chosen(quick ? quickShardedMatrix : fullMatrix),
  }
}
