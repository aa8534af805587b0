/**
 * Proves that `--rounds N` pools latencies correctly: a window's bins give back its percentiles
 * within 1% (never below), and rounds pooled give the percentiles of all their operations together,
 * which no single round's figure need equal: a tail seen in one round of five is 1 in 500 overall.
 */
import { expect, test } from "bun:test"
import { histogramOf, LatencyRecorder, pooledLatency } from "../lib/latency.ts"

/** A deterministic spread of latencies: mostly 0.3–0.8 ms, with every `tailEvery`-th one at `tailMs`. */
const latencies = (count: number, seed: number, tailEvery: number, tailMs: number): number[] => {
  let x = seed
  const next = () => {
    x = (x * 1_103_515_245 + 12_345) % 2 ** 31
    return x / 2 ** 31
  }
  return Array.from({ length: count }, (_, i) => (i % tailEvery === tailEvery - 1 ? tailMs : 0.3 + 0.5 * next()))
}

const figuresOf = (samples: readonly number[]) => {
  const recorder = new LatencyRecorder()
  for (const ms of samples) recorder.record(ms)
  return recorder.figures(5)
}

test("one window's bins give back its percentiles within 1%, never below", () => {
  const samples = latencies(10_000, 7, 50, 4)
  const exact = figuresOf(samples)
  const binned = pooledLatency([exact.histogram ?? []])
  expect(binned.ops).toBe(10_000)
  for (const key of ["p50Ms", "p99Ms", "p999Ms"] as const) {
    expect(binned[key]).toBeGreaterThanOrEqual(exact[key])
    expect(binned[key]).toBeLessThanOrEqual(exact[key] * 1.01)
  }
})

test("pooled rounds give the percentiles of all their operations, not of any one round", () => {
  // Four quiet rounds and one with a 1-in-50 tail at 6 ms: that round's p99 is 6 ms, the others'
  // under 1 ms, and over all 25,000 operations 100 are slow: 0.4%, so the p99 is not, the p999 is.
  const rounds = [1, 2, 3, 4].map((seed) => figuresOf(latencies(5_000, seed, 10_000, 6)))
  const noisy = figuresOf(latencies(5_000, 5, 50, 6))
  expect(noisy.p99Ms).toBe(6)
  const pooled = pooledLatency([...rounds, noisy].map((r) => r.histogram ?? []))
  expect(pooled.rounds).toBe(5)
  expect(pooled.ops).toBe(25_000)
  expect(pooled.p99Ms).toBeLessThan(0.81)
  expect(pooled.p999Ms).toBeGreaterThanOrEqual(6)
  expect(pooled.p999Ms).toBeLessThanOrEqual(6 * 1.01)
  // Against the exact figures of the same operations sorted together.
  const all = figuresOf(
    [1, 2, 3, 4].flatMap((seed) => latencies(5_000, seed, 10_000, 6)).concat(latencies(5_000, 5, 50, 6)),
  )
  expect(pooled.p99Ms).toBeGreaterThanOrEqual(all.p99Ms)
  expect(pooled.p99Ms).toBeLessThanOrEqual(all.p99Ms * 1.01)
})

test("bins are sparse, ascending, and count every latency, down to zero", () => {
  const histogram = histogramOf([0, 0.0005, 0.2, 0.2, 0.201, 3, 3000])
  expect(histogram.reduce((sum, [, n]) => sum + n, 0)).toBe(7)
  expect(histogram[0]).toEqual([0, 2])
  const bins = histogram.map(([bin]) => bin)
  expect([...bins].sort((a, b) => a - b)).toEqual(bins)
  expect(new Set(bins).size).toBe(bins.length)
  expect(pooledLatency([]).ops).toBe(0)
})
