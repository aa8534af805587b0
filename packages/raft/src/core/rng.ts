/**
 * A seeded PRNG (xoshiro128**, seeded through splitmix32) so the core's only randomness, the
 * election timeout, is reproducible from a seed.
 */
export class Rng {
  private s0: number
  private s1: number
  private s2: number
  private s3: number

  constructor(seed: number) {
    let x = seed >>> 0
    // splitmix32 spreads even a tiny seed over all four state words; xoshiro must not start at 0.
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0
      let z = x
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad)
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97)
      return (z ^ (z >>> 15)) >>> 0
    }
    this.s0 = next()
    this.s1 = next()
    this.s2 = next()
    this.s3 = next()
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1
  }

  /** Uniform in [0, 2^32). */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0
    const t = this.s1 << 9
    this.s2 ^= this.s0
    this.s3 ^= this.s1
    this.s1 ^= this.s2
    this.s0 ^= this.s3
    this.s2 ^= t
    this.s3 = rotl(this.s3, 11)
    return result
  }

  /** Uniform in [0, 1). */
  nextFloat(): number {
    return this.nextU32() / 4294967296
  }

  /** Uniform integer in [0, n) for 0 < n <= 2^32. */
  nextInt(n: number): number {
    return Math.floor(this.nextFloat() * n)
  }

  chance(p: number): boolean {
    return this.nextFloat() < p
  }
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k))

/** Mixes two numbers into a seed, so nodes given the same seed still draw different timeouts. */
export const mixSeed = (a: number, b: number): number => {
  let h = Math.imul((a >>> 0) ^ 0x85ebca6b, 0xc2b2ae35)
  h = Math.imul(h ^ (h >>> 13) ^ (b >>> 0), 0x27d4eb2f)
  h = Math.imul(h ^ (h >>> 15), 0x165667b1)
  return (h ^ (h >>> 16)) >>> 0
}
