export { type TimerId, VirtualClock } from "./clock.ts"
export { TraceDigest, type TraceField } from "./digest.ts"
export { effectClock, effectRandom, effectScheduler, runInWorld, simLayer, VirtualDeadlock } from "./effect.ts"
export { Rng, Seed, seedFromEnv } from "./rng.ts"
