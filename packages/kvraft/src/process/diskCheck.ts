/**
 * A server measures its disk at start: every Raft commit waits for an fdatasync of the log, so a
 * disk slower than about 10 ms per sync makes writes slow and can make elections flap (etcd's
 * operators are told the same of the 99th percentile over time; a probe of 40 syncs judges by its
 * 90th, since one slow sample among 40 is no verdict). The process warns; it still starts.
 *
 * Host time is read here on purpose: this measures the real disk, once, in the process shell.
 */
import { closeSync, fdatasyncSync, mkdirSync, openSync, unlinkSync, writeSync } from "node:fs"
import { join } from "node:path"

export interface FsyncProbe {
  readonly samples: number
  readonly p50Ms: number
  readonly p90Ms: number
  readonly maxMs: number
}

/** Default warning threshold: 90th percentile of one small write plus fdatasync. */
export const FSYNC_WARN_MS = 10

/** Writes `samples` small blocks (after one to warm up) to a probe file in `dir`, each followed by fdatasync; removes it. */
export const probeFsync = (dir: string, samples = 40, now: () => number = () => performance.now()): FsyncProbe => {
  mkdirSync(dir, { recursive: true })
  const path = join(dir, `.fsync-probe-${process.pid}`)
  const block = new Uint8Array(4096).fill(0x6b)
  const times: number[] = []
  const fd = openSync(path, "w")
  try {
    for (let i = 0; i <= samples; i++) {
      const started = now()
      writeSync(fd, block)
      fdatasyncSync(fd)
      if (i > 0) times.push(now() - started)
    }
  } finally {
    closeSync(fd)
    unlinkSync(path)
  }
  return summarize(times)
}

export const summarize = (times: readonly number[]): FsyncProbe => {
  const sorted = [...times].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
  return { samples: sorted.length, p50Ms: at(0.5), p90Ms: at(0.9), maxMs: sorted[sorted.length - 1] ?? 0 }
}

/** The warning for `probe` of the disk under `dir`, or undefined when it is fast enough. */
export const fsyncWarning = (dir: string, probe: FsyncProbe, thresholdMs = FSYNC_WARN_MS): string | undefined => {
  if (probe.p90Ms <= thresholdMs) return undefined
  const ms = (x: number) => x.toFixed(x < 10 ? 2 : 1)
  return (
    `the disk under ${dir} is slow for Raft: fdatasync p90 ${ms(probe.p90Ms)} ms (p50 ${ms(probe.p50Ms)} ms, ` +
    `${probe.samples} samples; want under ${thresholdMs} ms). Every write waits for it, so writes will be slow ` +
    "and leaders may lose elections under load: put the data directory on a faster disk (a local SSD)"
  )
}

/** The threshold from KV_FSYNC_WARN_MS (a number of ms), else the default. */
export const fsyncWarnThreshold = (env: Readonly<Record<string, string | undefined>> = process.env): number => {
  const raw = env.KV_FSYNC_WARN_MS
  const parsed = raw === undefined ? Number.NaN : Number(raw)
  return Number.isFinite(parsed) && parsed >= 0 ? parsed : FSYNC_WARN_MS
}
