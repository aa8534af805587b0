export { type TimerId, VirtualClock } from "./clock.ts"
export { TraceDigest, type TraceField } from "./digest.ts"
export { type DiskError, DiskFull, type DiskOptions, FileNotFound, FsyncFailed, SimDisk } from "./disk.ts"
export { type DriveOptions, VirtualDriver } from "./drive.ts"
export { effectClock, effectRandom, effectScheduler, runInWorld, simLayer, VirtualDeadlock } from "./effect.ts"
export { type FieldRandom, type MutateOptions, mutateFields, mutateOp } from "./mutateFields.ts"
export {
  type Address,
  type Datagram,
  type DatagramHandler,
  type DropReason,
  Endpoint,
  type EndpointCounts,
  type LinkRule,
  type NetworkOptions,
  SimNetwork,
} from "./network.ts"
export { ProcessClock, type ProcessContext, type ProcessMain, ProcessRegistry } from "./process.ts"
export { Rng, Seed, seedFromEnv } from "./rng.ts"
export { type VirtualTimers, virtualTimers } from "./timers.ts"
export { World, type WorldOptions } from "./world.ts"
