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

/**
 * The worker's part of `probeFsyncOffThread`: the loop of `probeFsync`, timed on its own thread.
 * Plain JavaScript in a string, so a compiled executable needs no second entry point.
 */
const PROBE_WORKER = `
const { closeSync, fdatasyncSync, openSync, unlinkSync, writeSync } = require("node:fs")
self.onmessage = (event) => {
  const { path, samples } = event.data
  try {
    const block = new Uint8Array(4096).fill(0x6b)
    const times = []
    const fd = openSync(path, "w")
    try {
      for (let i = 0; i <= samples; i++) {
        const started = performance.now()
        writeSync(fd, block)
        fdatasyncSync(fd)
        if (i > 0) times.push(performance.now() - started)
      }
    } finally {
      closeSync(fd)
      unlinkSync(path)
    }
    postMessage({ times })
  } catch (error) {
    postMessage({ error: String(error) })
  }
}
`

/**
 * `probeFsync` on a worker thread: a server's start does not wait for its 41 syncs (0.04-0.1 s on
 * this machine's disk when quiet, 0.1-0.6 s while other processes write) before it reads its
 * snapshot; each sample is timed on the worker, so a main thread busy restoring does not slow it.
 */
export const probeFsyncOffThread = (dir: string, samples = 40): Promise<FsyncProbe> =>
  // In the executor, so that a directory that cannot be made rejects like any other failure.
  new Promise<FsyncProbe>((resolve, reject) => {
    mkdirSync(dir, { recursive: true })
    const url = URL.createObjectURL(new Blob([PROBE_WORKER], { type: "application/javascript" }))
    const worker = new Worker(url)
    // A server stopped before its probe answers is not kept alive by it.
    worker.unref()
    const done = () => {
      worker.terminate()
      URL.revokeObjectURL(url)
    }
    worker.onmessage = (event: MessageEvent<{ times?: number[]; error?: string }>) => {
      done()
      const { times, error } = event.data
      if (times === undefined) {
        reject(new Error(`disk probe: ${error ?? "no answer"}`))
      } else resolve(summarize(times))
    }
    worker.onerror = (event) => {
      done()
      reject(new Error(`disk probe: ${event.message}`))
    }
    worker.postMessage({ path: join(dir, `.fsync-probe-${process.pid}`), samples })
  })

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
