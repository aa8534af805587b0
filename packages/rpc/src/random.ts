/**
 * A small seeded PRNG (mulberry32). Simulations draw every random choice from one of these so a
 * seed reproduces a run exactly.
 */
export class SeededRandom {
  private state: number

  constructor(readonly seed: number) {
    this.state = seed >>> 0
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  chance(p: number): boolean {
    return this.next() < p
  }
}

/** A seed from the environment (KV_SEED) or a fresh one; tests print it so a run can be replayed. */
export const seedFromEnv = (): number => {
  const text = process.env.KV_SEED
  if (text !== undefined && /^\d+$/.test(text)) return Number(text) >>> 0
  return (Math.random() * 2 ** 32) >>> 0
}
