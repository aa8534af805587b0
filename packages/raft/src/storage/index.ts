export { StorageCorrupt } from "./errors.ts"
export { type FileStorageOptions, openFileStorage } from "./fileStorage.ts"
export type { InlineFlushOptions } from "./inlineFlush.ts"
export { MemoryDisk, type MemoryStorageOptions, openMemoryStorage } from "./memoryStorage.ts"
export { SHARED_WAL_DIR, SharedWal, type SharedWalOptions, type SharedWalStats } from "./sharedWal.ts"
export { Storage } from "./storageService.ts"
export {
  durableOnReturn,
  type Entry,
  type HardState,
  initialHardState,
  type PersistedState,
  type RaftStorage,
  type Snapshot,
  type WriteHint,
} from "./types.ts"
