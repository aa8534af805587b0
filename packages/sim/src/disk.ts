/**
 * A disk with crash semantics. Each file has a durable image (what survives a crash) and a
 * list of writes since its last fsync. A crash keeps the durable image, replays none of the
 * pending writes except, possibly, a prefix of the first one cut at a seeded byte (a torn
 * write). Renames and creations are directory changes: durable only after `fsyncDir`.
 */
import { Result, Schema } from "effect"
import type { TraceDigest } from "./digest.ts"
import type { Rng } from "./rng.ts"

export class DiskFull extends Schema.TaggedError<DiskFull>()("DiskFull", {
  path: Schema.String,
  needBytes: Schema.Number,
  freeBytes: Schema.Number,
}) {}

export class FsyncFailed extends Schema.TaggedError<FsyncFailed>()("FsyncFailed", {
  path: Schema.String,
}) {}

export class FileNotFound extends Schema.TaggedError<FileNotFound>()("FileNotFound", {
  path: Schema.String,
}) {}

export type DiskError = DiskFull | FsyncFailed | FileNotFound

type PendingWrite =
  | { readonly _tag: "write"; readonly offset: number; readonly bytes: Uint8Array }
  | { readonly _tag: "truncate"; readonly length: number }

interface File {
  /** What a reader sees now. */
  current: Uint8Array
  /** What survives a crash (as of the last successful fsync). */
  durable: Uint8Array
  /** Writes since the last fsync, oldest first. */
  pending: Array<PendingWrite>
}

export interface DiskOptions {
  /** Total bytes the disk holds; writes beyond it fail with `DiskFull`. */
  readonly capacityBytes?: number
  /** Probability that a crash tears the first unsynced write of each file. */
  readonly tearProbability?: number
}

export class SimDisk {
  // Live namespace: path -> file. A file object is shared between names only transiently.
  private files = new Map<string, File>()
  // The namespace as of the last fsyncDir: path -> the file object it names.
  private durableNames = new Map<string, File>()
  private capacity: number
  private readonly tearProbability: number
  private failNextFsyncs = 0

  constructor(
    private readonly rng: Rng,
    options?: DiskOptions,
    private readonly trace?: TraceDigest,
    readonly name = "disk",
  ) {
    this.capacity = options?.capacityBytes ?? Number.POSITIVE_INFINITY
    this.tearProbability = options?.tearProbability ?? 0.5
  }

  /** Sets the capacity; `usedBytes` at or above it makes the disk full. */
  setCapacity(bytes: number): void {
    this.capacity = bytes
  }

  /** The next `count` fsync calls fail, and leave their pending writes pending. */
  failFsync(count = 1): void {
    this.failNextFsyncs += count
  }

  get usedBytes(): number {
    let used = 0
    for (const file of this.files.values()) used += file.current.length
    return used
  }

  list(): ReadonlyArray<string> {
    return [...this.files.keys()].sort()
  }

  exists(path: string): boolean {
    return this.files.has(path)
  }

  read(path: string): Result.Result<Uint8Array, FileNotFound> {
    const file = this.files.get(path)
    return file === undefined ? Result.fail(new FileNotFound({ path })) : Result.succeed(file.current.slice())
  }

  /** Appends, creating the file if it is missing. */
  append(path: string, bytes: Uint8Array): Result.Result<void, DiskFull> {
    const file = this.files.get(path)
    return this.write(path, file?.current.length ?? 0, bytes)
  }

  /** Writes at `offset`, zero-filling any gap; creates the file if it is missing. */
  write(path: string, offset: number, bytes: Uint8Array): Result.Result<void, DiskFull> {
    const file = this.files.get(path)
    const oldLength = file?.current.length ?? 0
    const growth = Math.max(0, offset + bytes.length - oldLength)
    const free = this.capacity - this.usedBytes
    if (growth > free) {
      this.trace?.record("disk-full", this.name, path, growth)
      return Result.fail(new DiskFull({ path, needBytes: growth, freeBytes: Math.max(0, free) }))
    }
    const target = file ?? this.create(path)
    const copy = bytes.slice()
    target.current = applyWrite(target.current, { _tag: "write", offset, bytes: copy })
    target.pending.push({ _tag: "write", offset, bytes: copy })
    return Result.succeed(undefined)
  }

  truncate(path: string, length: number): Result.Result<void, FileNotFound | DiskFull> {
    const file = this.files.get(path)
    if (file === undefined) return Result.fail(new FileNotFound({ path }))
    if (length > file.current.length) return this.write(path, length, new Uint8Array(0))
    file.current = file.current.slice(0, length)
    file.pending.push({ _tag: "truncate", length })
    return Result.succeed(undefined)
  }

  /** Makes the file's contents durable (not its name: see `fsyncDir`). */
  fsync(path: string): Result.Result<void, FsyncFailed | FileNotFound> {
    const file = this.files.get(path)
    if (file === undefined) return Result.fail(new FileNotFound({ path }))
    if (this.failNextFsyncs > 0) {
      this.failNextFsyncs--
      this.trace?.record("fsync-failed", this.name, path)
      return Result.fail(new FsyncFailed({ path }))
    }
    file.durable = file.current.slice()
    file.pending = []
    return Result.succeed(undefined)
  }

  /** Makes creations, renames and removals durable. */
  fsyncDir(): Result.Result<void, FsyncFailed> {
    if (this.failNextFsyncs > 0) {
      this.failNextFsyncs--
      this.trace?.record("fsync-failed", this.name, "/")
      return Result.fail(new FsyncFailed({ path: "/" }))
    }
    this.durableNames = new Map(this.files)
    return Result.succeed(undefined)
  }

  /** Atomically replaces `to` with `from` (the rename itself needs `fsyncDir` to be durable). */
  rename(from: string, to: string): Result.Result<void, FileNotFound> {
    const file = this.files.get(from)
    if (file === undefined) return Result.fail(new FileNotFound({ path: from }))
    this.files.delete(from)
    this.files.set(to, file)
    return Result.succeed(undefined)
  }

  remove(path: string): Result.Result<void, FileNotFound> {
    if (!this.files.delete(path)) return Result.fail(new FileNotFound({ path }))
    return Result.succeed(undefined)
  }

  /**
   * The power goes out. The namespace returns to the last `fsyncDir`; each file keeps its
   * durable image, plus, with `tearProbability`, a prefix of its first unsynced write cut at
   * a seeded byte boundary. Later unsynced writes are lost.
   */
  crash(): void {
    const survivors = new Map<string, File>()
    const seen = new Set<File>()
    for (const [path, file] of [...this.durableNames].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!seen.has(file)) {
        seen.add(file)
        let image = file.durable
        const first = file.pending[0]
        if (first !== undefined && this.rng.chance(this.tearProbability)) {
          image = tear(image, first, this.rng)
          this.trace?.record("torn", this.name, path, image.length)
        }
        file.durable = image
        file.current = image.slice()
        file.pending = []
      }
      survivors.set(path, file)
    }
    this.files = survivors
    this.durableNames = new Map(survivors)
    this.trace?.record("disk-crash", this.name, survivors.size)
  }

  /** Every state a crash right now may leave `path` in, shortest tear first (for exhaustive tests). */
  crashImages(path: string): ReadonlyArray<Uint8Array> {
    const file = this.durableNames.get(path)
    if (file === undefined) return []
    const first = file.pending[0]
    if (first === undefined) return [file.durable.slice()]
    const cuts = first._tag === "write" ? first.bytes.length : 0
    const images: Array<Uint8Array> = [file.durable.slice()]
    for (let cut = 1; cut <= cuts; cut++) images.push(applyTear(file.durable, first, cut))
    return images
  }

  private create(path: string): File {
    const file: File = { current: new Uint8Array(0), durable: new Uint8Array(0), pending: [] }
    this.files.set(path, file)
    return file
  }
}

const applyWrite = (image: Uint8Array, write: PendingWrite): Uint8Array => {
  if (write._tag === "truncate") return image.slice(0, write.length)
  const end = write.offset + write.bytes.length
  const out = new Uint8Array(Math.max(image.length, end))
  out.set(image)
  out.set(write.bytes, write.offset)
  return out
}

// A torn write lands its first `cut` bytes only; a truncate is all or nothing.
const applyTear = (image: Uint8Array, write: PendingWrite, cut: number): Uint8Array =>
  write._tag === "truncate"
    ? applyWrite(image, write)
    : applyWrite(image, { _tag: "write", offset: write.offset, bytes: write.bytes.subarray(0, cut) })

const tear = (image: Uint8Array, write: PendingWrite, rng: Rng): Uint8Array => {
  if (write._tag === "truncate") return applyWrite(image, write)
  // 0 bytes is "lost" and is already the untorn case; a torn write lands 1..n bytes.
  const cut = write.bytes.length === 0 ? 0 : 1 + rng.nextInt(write.bytes.length)
  return applyTear(image, write, cut)
}
