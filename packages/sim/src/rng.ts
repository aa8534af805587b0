/**
 * Seeded randomness. One root seed is split by purpose name into independent streams, so a
 * new consumer ("disk:n4") never shifts the numbers another one ("network") draws.
 */

// splitmix32 finaliser: a bijective avalanche on 32 bits.
const mix32 = (x: number): number => {
  let z = (x + 0x9e3779b9) | 0
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

const hashName = (seed: number, name: string): number => {
  let h = mix32(seed >>> 0)
  for (let i = 0; i < name.length; i++) {
    h = mix32(h ^ name.charCodeAt(i))
  }
  return mix32(h ^ name.length)
}

/** A deterministic stream (sfc32, four 32-bit words of state). */
export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(readonly seed: number) {
    this.a = mix32(seed)
    this.b = mix32(this.a ^ 0x6a09e667)
    this.c = mix32(this.b ^ 0xbb67ae85)
    this.d = 1
    // Warm up so that nearby seeds diverge before the first draw.
    for (let i = 0; i < 12; i++) this.nextU32()
  }

  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** In [0, 1). */
  nextDouble(): number {
    return this.nextU32() / 4294967296
  }

  /** An integer in [0, n); n must be a positive safe integer. */
  nextInt(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`nextInt(${n}): n must be a positive integer`)
    if (n <= 4294967296) return Math.floor(this.nextDouble() * n)
    const high = this.nextU32() * 2097152 + (this.nextU32() >>> 11)
    return high % n
  }

  /** An integer in [min, max] inclusive. */
  between(min: number, max: number): number {
    return min + this.nextInt(max - min + 1)
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return p > 0 && this.nextDouble() < p
  }

  /** A child stream that depends only on this stream's seed and `name`, not on draws so far. */
  split(name: string): Rng {
    return new Rng(hashName(this.seed, name))
  }
}

/** The root of a run: `stream(purpose)` always returns the same sequence for one seed. */
export class Seed {
  constructor(readonly value: number) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`seed must be a non-negative integer: ${value}`)
  }

  stream(purpose: string): Rng {
    // Seeds above 2^32 keep their high bits by folding them into the name hash.
    const high = Math.floor(this.value / 4294967296)
    return new Rng(hashName(mix32(this.value >>> 0) ^ mix32(high), purpose))
  }
}

/**
 * The seed named by `KV_SEED`, or a fresh one. Printing the replay command is the caller's job,
 * since only it knows the test file.
 */
export const seedFromEnv = (env: Record<string, string | undefined> = process.env): Seed => {
  const text = env.KV_SEED
  if (text !== undefined && text !== "") {
    const value = Number(text)
    if (!Number.isSafeInteger(value) || value < 0)
      throw new RangeError(`KV_SEED must be a non-negative integer: ${text}`)
    return new Seed(value)
  }
  return new Seed(Math.floor(Math.random() * 2 ** 32))
}
