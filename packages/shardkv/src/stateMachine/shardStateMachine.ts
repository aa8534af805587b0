/**
 * The state machine of one shard replica group: which configuration the group has reached, and
 * for every shard its migration state and (when held) its KvStateMachine — the shard's data and
 * its client sessions, which travel together so that writes stay exactly-once across moves.
 *
 * Pure and deterministic: every replica of the group that applies the same log holds the same
 * state. Ownership is checked when a client write is applied, not only when it arrives.
 */
import {
  answerRead,
  finishSlicedJob,
  type KvCommand,
  type KvLimits,
  type KvOp,
  type KvReadRequest,
  KvStateMachine,
  kvError,
  opKeys,
  resolveKvLimits,
  type SlicedJob,
  type SnapshotJob,
  slicedJobOf,
  snapshotJobOf,
  utf8ByteLength,
} from "@kv/kvraft"
import { type Config, type Gid, initialConfig, noGroup, shardOf } from "@kv/shardctrler"
import { Decoder } from "@msgpack/msgpack"
import { parseConfig, type ShardCommand, type ShardHolder } from "./command.ts"
import { crc32 } from "./crc32.ts"
import { type GetResult, ignored, notReady, type ReadResult, type ShardResult, wrongGroup } from "./result.ts"
import { holdsData, type ShardState, servesClients, shardStateCode, shardStateCodes } from "./shardState.ts"
import { Blob, SnapshotPieces } from "./snapshotPieces.ts"

/** A shard's store restored by its own sliced job, yielding between slices; its errors go through `wrap`. */
function* restoreStore(
  data: Uint8Array,
  limits: KvLimits,
  entriesPerSlice: number | undefined,
  wrap: (cause: unknown) => Error,
): Generator<void, KvStateMachine> {
  const job = KvStateMachine.beginRestore(data, limits, entriesPerSlice)
  for (;;) {
    let kv: KvStateMachine | undefined
    try {
      kv = job.step()
    } catch (cause) {
      throw wrap(cause)
    }
    if (kv !== undefined) return kv
    yield
  }
}

export interface ShardStateMachineOptions {
  /** The replica group this state machine belongs to. */
  readonly gid: Gid
  /** Fixed for the cluster's lifetime; every configuration has this many shards. */
  readonly nShards: number
  readonly limits?: Partial<KvLimits>
}

/** A shard in motion and the group on the other side of the move. */
export interface MigrationTask {
  readonly shard: number
  /** The configuration that gave this group the shard. */
  readonly configNum: number
  /** The group the data comes from: the previous owner, or the last group that held it parked. */
  readonly fromGid: Gid
  readonly servers: readonly string[]
  /**
   * The configuration at which the source froze the shard: `configNum` for a move between
   * groups; for a shard that was parked (given to no group), the configuration that parked it.
   * Pull and delete requests name the shard by this number.
   */
  readonly handOffConfigNum: number
}

/** Where a group that is pulling a shard gets it from; kept until the source has deleted it. */
interface Source {
  readonly gid: Gid
  readonly servers: readonly string[]
  readonly handOffConfigNum: number
}

/** The part of a pulled shard installed so far, while Pulling; built up by InstallPiece entries. */
interface Incoming {
  readonly total: number
  readonly checksum: number | undefined
  /** CRC-32 of the bytes received so far. */
  crc: number
  received: number
  parts: Uint8Array[]
}

/** What the group can give a puller asking for `shard` as handed off at `configNum`. */
export type HandOff =
  | { readonly kind: "data"; readonly bytes: Uint8Array; readonly checksum: number }
  /** This replica has not applied configuration `configNum` yet. */
  | { readonly kind: "notReady" }
  /** The shard is not handed off at `configNum` here: already deleted, or never was. */
  | { readonly kind: "gone" }

/** Whether the copy handed off at `configNum` has been deleted here. */
export type DeleteStatus = "done" | "pending" | "notReady"

interface Slot {
  state: ShardState
  kv: KvStateMachine | undefined
  /** `kv.snapshot()` until the next change to kv: frozen shards are handed off from these bytes. */
  bytes: Uint8Array | undefined
  /** CRC-32 of `bytes`, computed when first handed off. */
  checksum: number | undefined
  /** A snapshot of kv being taken in slices whose bytes, once done, are still kv's state (then `bytes`). */
  snapshotJob: SnapshotJob | undefined
  /** Pulling and AwaitingGc: where the data comes from. */
  source: Source | undefined
  /** Pulling: the pieces installed so far (none until the first piece). */
  incoming: Incoming | undefined
}

/**
 * A shard this group owned until a configuration gave it to no group: kept, frozen, beside the
 * slot (the group may meanwhile be given the shard again from another group) until the next group
 * given the shard has installed it and asks for it to be deleted.
 */
interface ParkedCopy {
  /** The configuration that gave the shard to no group. */
  readonly parkedAt: number
  readonly kv: KvStateMachine
  bytes: Uint8Array | undefined
  checksum: number | undefined
  snapshotJob: SnapshotJob | undefined
}

/** The group that holds a shard parked, while the configurations give the shard to no group. */
interface LastHolder {
  readonly gid: Gid
  readonly servers: readonly string[]
  readonly configNum: number
}

const snapshotVersion = 2

/** Bytes copied per slice of a snapshot taken while serving (about a millisecond of work). */
const snapshotCopySliceBytes = 2 * 1024 * 1024

// Snapshots are rare and large; a separate instance keeps the command codec's buffers small.
const snapshotDecoder = new Decoder()

const encodeConfig = (c: Config) => [c.num, c.shards, c.groups]

export class ShardStateMachine {
  readonly gid: Gid
  readonly nShards: number
  readonly limits: KvLimits
  #config: Config
  #prevConfig: Config
  #slots: Slot[]
  /** Per shard given to no group: who keeps it parked (every group tracks this from the configurations). */
  #lastHolder: (LastHolder | undefined)[]
  #parked: (ParkedCopy | undefined)[]
  /** The id this group's log was started with; a group whose data was lost comes back with a new one. */
  #incarnation: string | undefined
  /**
   * The shard stores whose snapshot is being taken in slices (a store takes one at a time): a
   * snapshot wanted at once meanwhile finishes the store's first.
   */
  #kvJobs = new Map<KvStateMachine, SnapshotJob>()

  constructor(options: ShardStateMachineOptions) {
    if (!Number.isSafeInteger(options.gid) || options.gid <= 0) {
      throw new RangeError(`a shard group's gid must be a positive integer, got ${options.gid}`)
    }
    this.gid = options.gid
    this.nShards = options.nShards
    this.limits = resolveKvLimits(options.limits)
    this.#config = initialConfig(options.nShards)
    this.#prevConfig = this.#config
    this.#slots = Array.from({ length: options.nShards }, emptySlot)
    this.#lastHolder = new Array(options.nShards).fill(undefined)
    this.#parked = new Array(options.nShards).fill(undefined)
  }

  /** The configuration the group has reached. */
  get config(): Config {
    return this.#config
  }

  /** The id of this group's log (undefined until its first leader has made one). */
  get incarnation(): string | undefined {
    return this.#incarnation
  }

  /** The configuration before it (configuration 0 before configuration 1 is reached). */
  get prevConfig(): Config {
    return this.#prevConfig
  }

  /** The shard's state; "Parked" where the group holds only a parked copy of it. */
  shardState(shard: number): ShardState {
    const state = this.#slot(shard).state
    return state === "Absent" && this.#parked[shard] !== undefined ? "Parked" : state
  }

  shardStates(): ShardState[] {
    return this.#slots.map((_, shard) => this.shardState(shard))
  }

  /** Keys held in each shard (0 where no data is held). */
  shardKeyCounts(): number[] {
    return this.#slots.map((slot, shard) => slot.kv?.size() ?? this.#parked[shard]?.kv.size() ?? 0)
  }

  /** Client sessions held over all shards (a client with keys in several shards counts once per shard). */
  sessionCount(): number {
    return this.#slots.reduce((sum, slot) => sum + (slot.kv?.sessions.count() ?? 0), 0)
  }

  /** The group may move to the next configuration only once no shard is in motion. */
  canReconfigure(): boolean {
    return this.#slots.every((slot) => slot.state === "Serving" || slot.state === "Absent")
  }

  /** Bytes of `shard` installed so far while pulling it (0 before the first piece or when not pulling). */
  installedBytes(shard: number): number {
    return this.#slot(shard).incoming?.received ?? 0
  }

  /** Size and checksum of the shard being installed, once its first piece is in. */
  incomingShard(shard: number): { readonly total: number; readonly checksum: number | undefined } | undefined {
    const incoming = this.#slot(shard).incoming
    return incoming === undefined ? undefined : { total: incoming.total, checksum: incoming.checksum }
  }

  /**
   * Whether this group has installed `shard`, given to it at configuration `configNum` (asked by
   * the source before it deletes its copy). Moving past a configuration needs every shard in.
   */
  hasInstalled(configNum: number, shard: number): boolean {
    if (!this.#isShard(shard) || this.#config.num < configNum) return false
    if (this.#config.num > configNum) return true
    const state = this.#slot(shard).state
    return state === "AwaitingGc" || state === "Serving"
  }

  /** The configuration at which a parked shard was given to no group, or undefined if not parked here. */
  parkedAt(shard: number): number | undefined {
    return this.#isShard(shard) ? this.#parked[shard]?.parkedAt : undefined
  }

  /** Shards to fetch from their previous owner. */
  pulls(): MigrationTask[] {
    return this.#tasks("Pulling")
  }

  /** Installed shards whose previous owner must still be told to delete its copy. */
  pendingGc(): MigrationTask[] {
    return this.#tasks("AwaitingGc")
  }

  apply(command: ShardCommand): ShardResult {
    switch (command.type) {
      case "client":
        return this.#applyClient(command.command)
      case "reconfigure":
        return this.#reconfigure(command.config)
      case "installPiece":
        return this.#installPiece(command)
      case "deleteShard":
        return this.#deleteShard(command.configNum, command.shard)
      case "gcDone":
        return this.#gcDone(command.configNum, command.shard)
      case "incarnate":
        if (this.#incarnation !== undefined) return ignored(`incarnation is already ${this.#incarnation}`)
        this.#incarnation = command.incarnation
        return { ok: true }
      case "fastForward":
        return this.#fastForward(command.config, command.prevConfig, command.holders)
    }
  }

  /** The value of `key` if this group serves its shard now. Callers make it linearizable (ReadIndex). */
  get(key: string): GetResult {
    if (utf8ByteLength(key) > this.limits.maxKeyBytes) {
      return { ok: false, error: "KeyTooLarge", message: `key exceeds ${this.limits.maxKeyBytes} bytes` }
    }
    const shard = shardOf(key, this.nShards)
    const kv = this.#serving(shard)
    if (kv === undefined) return this.#wrongGroup(shard)
    return { ok: true, value: kv.get(key) }
  }

  /**
   * An entry with its metadata, or a page of one shard's keys under a prefix (`request.shard`, or
   * the prefix's shard), if this group serves that shard now. Callers make it linearizable.
   */
  read(request: KvReadRequest): ReadResult {
    const shard =
      request.read === "entry"
        ? shardOf(request.key, this.nShards)
        : (request.shard ?? shardOf(request.prefix, this.nShards))
    if (!this.#isShard(shard)) return wrongGroup(`shard ${shard} is not in [0, ${this.nShards})`)
    const kv = this.#serving(shard)
    if (kv === undefined) return this.#wrongGroup(shard)
    return answerRead(kv, request)
  }

  /** The store of `shard` if this group serves it now (for watchers: read only), else undefined. */
  servingStore(shard: number): KvStateMachine | undefined {
    return this.#isShard(shard) ? this.#serving(shard) : undefined
  }

  /**
   * The error a write would get if applied now, or undefined: lets the leader refuse early.
   * Applying checks again, since ownership and values change meanwhile.
   */
  precheck(op: KvOp): ShardResult | undefined {
    const refused = this.#refusal(op)
    if (refused !== undefined) return refused
    const shard = shardOf(op.key, this.nShards)
    const kv = this.#serving(shard)
    if (kv === undefined) return this.#wrongGroup(shard)
    return kv.precheck(op)
  }

  /** The shard's data for a puller, as frozen when the group moved to `configNum`. */
  handOff(configNum: number, shard: number): HandOff {
    if (!this.#isShard(shard)) return { kind: "gone" }
    const parked = this.#parked[shard]
    const slot = parked?.parkedAt === configNum ? parked : this.#slot(shard)
    if (slot !== parked) {
      if (this.#config.num < configNum) return { kind: "notReady" }
      if (this.#config.num > configNum || this.#slot(shard).state !== "HandingOff") return { kind: "gone" }
    }
    if (slot.kv === undefined) return { kind: "gone" }
    const bytes = this.#kvBytes(slot, slot.kv)
    slot.checksum ??= crc32(bytes)
    return { kind: "data", bytes, checksum: slot.checksum }
  }

  /**
   * Whether the copy of `shard` handed off at `configNum` is gone. A group moves past a
   * configuration only with no shard handing off, so a later configuration means deleted,
   * unless the shard is parked here since that configuration.
   */
  deleteStatus(configNum: number, shard: number): DeleteStatus {
    if (this.#isShard(shard) && this.parkedAt(shard) === configNum) return "pending"
    if (this.#config.num < configNum) return "notReady"
    if (this.#config.num > configNum || !this.#isShard(shard)) return "done"
    return this.#slot(shard).state === "HandingOff" ? "pending" : "done"
  }

  /**
   * msgpack `[version, gid, config, prevConfig, shards, details, incarnation]`, where `shards` lists per shard
   * its state code followed, for states that hold data, by the shard's KvStateMachine snapshot,
   * and `details` lists `[shard, parked, source, incoming, lastHolder]` for every shard that has
   * any of them (each null when absent; `parked` is `[parkedAt, kvSnapshot]`). Version 1 had no
   * `details` nor `incarnation`.
   */
  snapshot(): Uint8Array {
    return this.snapshotWithRoom(0)
  }

  /** The bytes of `snapshot()` after `roomBytes` free bytes, for an envelope the caller writes there. */
  snapshotWithRoom(roomBytes: number): Uint8Array {
    return finishSlicedJob(this.beginSnapshot(roomBytes))
  }

  /**
   * `snapshotWithRoom` of the state as it is now, taken a slice at a time by `step` while commands
   * go on being applied between slices (a group holding a million keys keeps serving while it is
   * written). What changes in place is captured here: the group's own state now, each shard's
   * store as a frozen view whose snapshot its own job takes in slices; the slices then wait for
   * those jobs and copy everything into one buffer. Call `step` until it returns the bytes (and it
   * returns them on every call after); one job at a time, and none across a restore (a restored
   * machine is a new one): a job given up leaves its stores' jobs to be finished by the next one.
   * `copySliceBytes` sets the bytes copied per step (tests make it small).
   */
  beginSnapshot(roomBytes: number, copySliceBytes: number = snapshotCopySliceBytes): SnapshotJob {
    this.#finishKvJobs()
    const pending: {
      readonly shard: number
      readonly kv: KvStateMachine
      readonly job: SnapshotJob
      readonly blob: Blob
    }[] = []
    const dataOf = (shard: number, holder: Slot | ParkedCopy, kv: KvStateMachine): Blob => {
      if (holder.bytes !== undefined) return new Blob([holder.bytes])
      const job = kv.beginSnapshot(0)
      this.#kvJobs.set(kv, job)
      holder.snapshotJob = job
      const blob = new Blob()
      pending.push({ shard, kv, job, blob })
      return blob
    }
    const shards: (number | Blob)[] = []
    const details: unknown[] = []
    this.#slots.forEach((slot, shard) => {
      shards.push(shardStateCode(slot.state))
      if (holdsData(slot.state)) {
        if (slot.kv === undefined) throw new Error(`ShardStateMachine: shard in state ${slot.state} has no data`)
        shards.push(dataOf(shard, slot, slot.kv))
      }
      const holder = this.#lastHolder[shard]
      const parked = this.#parked[shard]
      const { source, incoming } = slot
      if (parked === undefined && source === undefined && incoming === undefined && holder === undefined) return
      details.push([
        shard,
        parked === undefined ? null : [parked.parkedAt, dataOf(shard, parked, parked.kv)],
        source === undefined ? null : [source.gid, source.servers, source.handOffConfigNum],
        incoming === undefined
          ? null
          : [incoming.total, incoming.checksum ?? null, incoming.crc, incoming.received, new Blob([...incoming.parts])],
        holder === undefined ? null : [holder.gid, holder.servers, holder.configNum],
      ])
    })
    const head = [snapshotVersion, this.gid, encodeConfig(this.#config), encodeConfig(this.#prevConfig)]
    const incarnation = this.#incarnation ?? null
    const machine = this
    const slices = (function* (): Generator<void, Uint8Array> {
      for (const { shard, kv, job, blob } of pending) {
        let bytes = job.step()
        while (bytes === undefined) {
          yield
          bytes = job.step()
        }
        blob.parts = [bytes]
        machine.#settleKvJob(shard, kv, job, bytes)
      }
      const pieces = new SnapshotPieces().add([...head, shards, details, incarnation])
      yield
      return yield* pieces.copy(roomBytes, copySliceBytes)
    })()
    return snapshotJobOf(slices)
  }

  /**
   * A shard store's job is done: its bytes become the store's cached snapshot if it has not changed
   * since (a store stays with its shard, in the slot or parked).
   */
  #settleKvJob(shard: number, kv: KvStateMachine, job: SnapshotJob, bytes: Uint8Array): void {
    if (this.#kvJobs.get(kv) === job) this.#kvJobs.delete(kv)
    for (const holder of [this.#slot(shard), this.#parked[shard]]) {
      if (holder === undefined || holder.snapshotJob !== job) continue
      holder.snapshotJob = undefined
      holder.bytes = bytes
    }
  }

  /** Finishes the store jobs left by a snapshot given up, so that their stores can be frozen again. */
  #finishKvJobs(): void {
    for (const kv of [...this.#kvJobs.keys()]) this.#finishKvJob(kv)
  }

  /** Finishes the slice-wise snapshot of `kv` if one is being taken; its bytes. */
  #finishKvJob(kv: KvStateMachine): { readonly job: SnapshotJob; readonly bytes: Uint8Array } | undefined {
    const job = this.#kvJobs.get(kv)
    if (job === undefined) return undefined
    this.#kvJobs.delete(kv)
    return { job, bytes: finishSlicedJob(job) }
  }

  /** `kv.snapshot()` of the store `holder` holds, cached in the holder until the store changes. */
  #kvBytes(holder: Slot | ParkedCopy, kv: KvStateMachine): Uint8Array {
    if (holder.bytes !== undefined) return holder.bytes
    const finished = this.#finishKvJob(kv)
    if (finished !== undefined && finished.job === holder.snapshotJob) {
      holder.snapshotJob = undefined
      holder.bytes = finished.bytes
      return finished.bytes
    }
    holder.snapshotJob = undefined
    holder.bytes = kv.snapshot()
    return holder.bytes
  }

  /** Rebuilds a state machine from `snapshot()` bytes. Throws an Error saying what is wrong if corrupt. */
  static restore(bytes: Uint8Array, options: ShardStateMachineOptions): ShardStateMachine {
    return finishSlicedJob(ShardStateMachine.beginRestore(bytes, options, Number.POSITIVE_INFINITY))
  }

  /**
   * `restore` a slice at a time: each `step` restores up to `entriesPerSlice` keys of one shard's
   * store (KvStateMachine.beginRestore), so that a replica of a group holding large shards answers
   * its peers while it restores at startup. `step` returns the machine once done and throws as
   * `restore` does; the bytes must not change meanwhile.
   */
  static beginRestore(
    bytes: Uint8Array,
    options: ShardStateMachineOptions,
    entriesPerSlice?: number,
  ): SlicedJob<ShardStateMachine> {
    return slicedJobOf(ShardStateMachine.#restoreSlices(bytes, options, entriesPerSlice))
  }

  static *#restoreSlices(
    bytes: Uint8Array,
    options: ShardStateMachineOptions,
    entriesPerSlice: number | undefined,
  ): Generator<void, ShardStateMachine> {
    const corrupt = (what: string, cause?: unknown) =>
      new Error(`ShardStateMachine.restore: corrupt snapshot: ${what}`, cause === undefined ? undefined : { cause })
    let decoded: unknown
    try {
      decoded = snapshotDecoder.decode(bytes)
    } catch (cause) {
      throw corrupt(`not msgpack (${String(cause)})`, cause)
    }
    if (!Array.isArray(decoded) || decoded.length < 5) throw corrupt("expected [version, gid, config, prev, shards]")
    const [version, gid, config, prevConfig, shards, details, incarnation] = decoded as unknown[]
    if (version !== 1 && version !== snapshotVersion)
      throw new Error(`ShardStateMachine.restore: unsupported version ${String(version)}`)
    if (decoded.length !== (version === 1 ? 5 : 7)) throw corrupt(`version ${version} with ${decoded.length} fields`)
    if (gid !== options.gid) throw corrupt(`snapshot of group ${String(gid)} restored into group ${options.gid}`)
    const machine = new ShardStateMachine(options)
    machine.#config = machine.#parseSnapshotConfig(config, "config", corrupt)
    machine.#prevConfig = machine.#parseSnapshotConfig(prevConfig, "prevConfig", corrupt)
    if (!Array.isArray(shards)) throw corrupt("shards is not a list")
    let at = 0
    for (let shard = 0; shard < machine.nShards; shard++) {
      const state = shardStateCodes[shards[at++] as number]
      if (state === undefined) throw corrupt(`state of shard ${shard}`)
      const slot = machine.#slot(shard)
      slot.state = state
      if (!holdsData(state)) continue
      const data: unknown = shards[at++]
      if (!(data instanceof Uint8Array)) throw corrupt(`data of shard ${shard}`)
      slot.kv = yield* restoreStore(data, machine.limits, entriesPerSlice, (cause) =>
        corrupt(`shard ${shard}: ${(cause as Error).message}`, cause),
      )
    }
    if (at !== shards.length) throw corrupt("trailing shard entries")
    if (version === 1) machine.#sourcesFromPrevConfig()
    else yield* machine.#restoreDetails(details, corrupt, entriesPerSlice)
    if (incarnation !== undefined && incarnation !== null) {
      if (typeof incarnation !== "string") throw corrupt("incarnation is not a string")
      machine.#incarnation = incarnation
    }
    return machine
  }

  /** Version 1 snapshots: every shard in motion moved between the previous and the current configuration. */
  #sourcesFromPrevConfig(): void {
    this.#slots.forEach((slot, shard) => {
      if (slot.state !== "Pulling" && slot.state !== "AwaitingGc") return
      const gid = this.#prevConfig.shards[shard] ?? noGroup
      slot.source = { gid, servers: this.#prevConfig.groups[String(gid)] ?? [], handOffConfigNum: this.#config.num }
    })
  }

  *#restoreDetails(
    details: unknown,
    corrupt: (what: string) => Error,
    entriesPerSlice: number | undefined,
  ): Generator<void, void> {
    if (!Array.isArray(details)) throw corrupt("details is not a list")
    for (const entry of details as unknown[]) {
      const [shard, parked, source, incoming, holder] = Array.isArray(entry) ? (entry as unknown[]) : []
      if (!this.#isShard(shard as number)) throw corrupt(`details of shard ${String(shard)}`)
      const slot = this.#slot(shard as number)
      const what = `details of shard ${String(shard)}`
      if (parked !== null) {
        const [parkedAt, data] = Array.isArray(parked) ? (parked as unknown[]) : []
        if (!isCount(parkedAt) || !(data instanceof Uint8Array)) throw corrupt(what)
        const kv = yield* restoreStore(data, this.limits, entriesPerSlice, (cause) =>
          corrupt(`parked shard ${String(shard)}: ${(cause as Error).message}`),
        )
        this.#parked[shard as number] = { parkedAt, kv, bytes: data, checksum: undefined, snapshotJob: undefined }
      }
      if (source !== null)
        slot.source = parseHolder(source, corrupt, what, (gid, servers, num) => ({
          gid,
          servers,
          handOffConfigNum: num,
        }))
      if (incoming !== null) {
        const [total, checksum, crc, received, data] = Array.isArray(incoming) ? (incoming as unknown[]) : []
        const valid =
          isCount(total) &&
          (checksum === null || isCount(checksum)) &&
          isCount(crc) &&
          isCount(received) &&
          data instanceof Uint8Array &&
          data.length === received &&
          received <= total
        if (!valid || slot.state !== "Pulling") throw corrupt(what)
        slot.incoming = { total, checksum: checksum ?? undefined, crc, received, parts: [data] }
      }
      if (holder !== null) {
        this.#lastHolder[shard as number] = parseHolder(holder, corrupt, what, (gid, servers, configNum) => ({
          gid,
          servers,
          configNum,
        }))
      }
    }
  }

  #parseSnapshotConfig(raw: unknown, name: string, corrupt: (what: string) => Error): Config {
    const fields = Array.isArray(raw) && raw.length === 3 ? (raw as unknown[]) : []
    const config = parseConfig(fields[0], fields[1], fields[2])
    if (config === undefined || config.shards.length !== this.nShards) throw corrupt(`${name} is not a configuration`)
    return config
  }

  /** A transaction naming keys of another shard than its routing key's is refused whole. */
  /** What a shard group refuses whatever its state: leases (kvraft only), transactions across shards. */
  #refusal(op: KvOp): ShardResult | undefined {
    if (usesLease(op)) {
      return kvError("InvalidRequest", "leases are served by the kvraft service; the sharded service has none")
    }
    if (op.op !== "txn") return undefined
    const shard = shardOf(op.key, this.nShards)
    const other = opKeys(op).find((key) => shardOf(key, this.nShards) !== shard)
    if (other === undefined) return undefined
    return kvError(
      "CrossShard",
      `the transaction names ${JSON.stringify(op.key)} (shard ${shard}) and ${JSON.stringify(other)} ` +
        `(shard ${shardOf(other, this.nShards)}): give its keys one hash tag, as in "{user42}.a"`,
    )
  }

  #applyClient(command: KvCommand): ShardResult {
    // Refused before the session records anything: the same command can never apply.
    const refused = this.#refusal(command.op)
    if (refused !== undefined) return refused
    const shard = shardOf(command.op.key, this.nShards)
    const kv = this.#serving(shard)
    if (kv === undefined) return this.#wrongGroup(shard)
    // Even a duplicate touches the session (floor, activity), so the cached bytes go stale.
    const slot = this.#slot(shard)
    slot.bytes = undefined
    slot.checksum = undefined
    slot.snapshotJob = undefined
    return kv.apply(command)
  }

  #reconfigure(next: Config): ShardResult {
    const current = this.#config
    if (next.num !== current.num + 1) {
      return ignored(`configuration ${next.num} does not follow ${current.num}`)
    }
    if (next.shards.length !== this.nShards) {
      return ignored(`configuration ${next.num} has ${next.shards.length} shards, not ${this.nShards}`)
    }
    if (!this.canReconfigure()) return ignored(`configuration ${current.num} is still migrating shards`)
    for (let shard = 0; shard < this.nShards; shard++) {
      const slot = this.#slot(shard)
      const before = current.shards[shard] ?? noGroup
      const after = next.shards[shard] ?? noGroup
      const holder = this.#lastHolder[shard]
      // Every group remembers who keeps a shard that no group owns, to know where to pull it from.
      if (before !== noGroup && after === noGroup) {
        this.#lastHolder[shard] = { gid: before, servers: current.groups[String(before)] ?? [], configNum: next.num }
      } else if (after !== noGroup) {
        this.#lastHolder[shard] = undefined
      }
      const ownedBefore = before === this.gid
      const ownedAfter = after === this.gid
      if (ownedBefore && ownedAfter) continue
      if (ownedBefore) {
        // No group to hand the shard to: keep it, frozen, for whichever group gets it next. A copy
        // parked earlier is obsolete: the shard came back here through a group that installed it.
        if (after === noGroup) {
          this.#parked[shard] = {
            parkedAt: next.num,
            kv: slot.kv!,
            bytes: slot.bytes,
            checksum: slot.checksum,
            snapshotJob: slot.snapshotJob,
          }
          this.#drop(slot)
        } else {
          slot.state = "HandingOff"
        }
      } else if (ownedAfter) {
        const parked = this.#parked[shard]
        if (before !== noGroup) {
          this.#startPulling(slot, {
            gid: before,
            servers: current.groups[String(before)] ?? [],
            handOffConfigNum: next.num,
          })
        } else if (holder?.gid === this.gid && parked?.parkedAt === holder.configNum) {
          this.#drop(slot)
          slot.state = "Serving"
          slot.kv = parked.kv
          this.#parked[shard] = undefined
        } else if (holder !== undefined) {
          // A copy still parked here from before stays until its puller deletes it: the holder may
          // lag behind the configurations and still need it to reach the one that parked it.
          this.#startPulling(slot, { gid: holder.gid, servers: holder.servers, handOffConfigNum: holder.configNum })
        } else {
          // No group ever held the shard: it starts empty.
          this.#drop(slot)
          slot.state = "Serving"
          slot.kv = new KvStateMachine(this.limits)
        }
      }
    }
    this.#prevConfig = current
    this.#config = next
    return { ok: true }
  }

  /**
   * A new incarnation of a gid that was used before (its data directories were lost after it had
   * left) skips the configurations its predecessor lived through: it starts at `config`, where the
   * gid is not a member, knowing who keeps each shard that no group owns there. Only a group that
   * has done nothing yet may do this.
   */
  #fastForward(config: Config, prevConfig: Config, holders: readonly ShardHolder[]): ShardResult {
    const fresh = this.#config.num === 0 && this.#slots.every((slot) => slot.state === "Absent")
    if (!fresh || this.#parked.some((p) => p !== undefined)) return ignored("only a new group may fast-forward")
    if (config.shards.length !== this.nShards || prevConfig.shards.length !== this.nShards) {
      return ignored(`configuration ${config.num} does not have ${this.nShards} shards`)
    }
    if (config.shards.includes(this.gid) || String(this.gid) in config.groups) {
      return ignored(`group ${this.gid} is a member of configuration ${config.num}`)
    }
    this.#config = config
    this.#prevConfig = prevConfig
    this.#lastHolder = new Array(this.nShards).fill(undefined)
    for (const h of holders) {
      if (this.#isShard(h.shard)) this.#lastHolder[h.shard] = { gid: h.gid, servers: h.servers, configNum: h.configNum }
    }
    return { ok: true }
  }

  #startPulling(slot: Slot, source: Source): void {
    this.#drop(slot)
    slot.state = "Pulling"
    slot.source = source
  }

  #installPiece(piece: Extract<ShardCommand, { type: "installPiece" }>): ShardResult {
    const { configNum, shard, offset, total, checksum, bytes } = piece
    if (!this.#isShard(shard) || configNum !== this.#config.num || this.#slot(shard).state !== "Pulling") {
      return ignored(`shard ${shard} is not being pulled for configuration ${configNum}`)
    }
    const slot = this.#slot(shard)
    if (offset === 0) {
      slot.incoming = { total, checksum, crc: 0, received: 0, parts: [] }
    }
    const incoming = slot.incoming
    if (
      incoming === undefined ||
      offset !== incoming.received ||
      total !== incoming.total ||
      checksum !== incoming.checksum
    ) {
      return ignored(
        `piece at ${offset} of shard ${shard} (${total} B) does not follow the ${incoming?.received ?? 0} B installed`,
      )
    }
    if (offset + bytes.length > total || (bytes.length === 0 && offset !== total)) {
      slot.incoming = undefined
      return ignored(`piece at ${offset} of shard ${shard} does not fit its ${total} B`)
    }
    if (bytes.length > 0) {
      // The entry's buffer belongs to the log; the state machine keeps its own copy.
      incoming.parts.push(bytes.slice())
      incoming.crc = crc32(bytes, incoming.crc)
      incoming.received += bytes.length
    }
    if (incoming.received < total) return { ok: true }
    slot.incoming = undefined
    // Every replica decides the same way; the puller fetches the shard again from the start.
    if (checksum !== undefined && incoming.crc !== checksum) {
      return ignored(`shard ${shard} failed its checksum (${incoming.crc} != ${checksum})`)
    }
    let kv: KvStateMachine
    try {
      kv = KvStateMachine.restore(concat(incoming.parts), this.limits)
    } catch (cause) {
      return ignored(`shard ${shard} data is corrupt: ${(cause as Error).message}`)
    }
    slot.kv = kv
    slot.bytes = undefined
    slot.checksum = undefined
    slot.state = "AwaitingGc"
    return { ok: true }
  }

  #deleteShard(configNum: number, shard: number): ShardResult {
    if (this.#isShard(shard) && this.parkedAt(shard) === configNum) {
      this.#parked[shard] = undefined
      return { ok: true }
    }
    if (this.#config.num < configNum) return notReady(`configuration ${configNum} not reached (at ${this.#config.num})`)
    if (this.#config.num === configNum && this.#isShard(shard)) {
      const slot = this.#slot(shard)
      if (slot.state === "HandingOff") this.#drop(slot)
    }
    return { ok: true }
  }

  #gcDone(configNum: number, shard: number): ShardResult {
    if (!this.#isShard(shard) || configNum !== this.#config.num || this.#slot(shard).state !== "AwaitingGc") {
      return ignored(`shard ${shard} is not awaiting deletion at its previous owner in configuration ${configNum}`)
    }
    const slot = this.#slot(shard)
    slot.state = "Serving"
    slot.source = undefined
    return { ok: true }
  }

  #serving(shard: number): KvStateMachine | undefined {
    const slot = this.#slot(shard)
    if (this.#config.shards[shard] !== this.gid || !servesClients(slot.state)) return undefined
    return slot.kv
  }

  #wrongGroup(shard: number) {
    return wrongGroup(
      `group ${this.gid} does not serve shard ${shard} in configuration ${this.#config.num} ` +
        `(${this.#slot(shard).state}, owner ${this.#config.shards[shard]})`,
    )
  }

  #tasks(state: ShardState): MigrationTask[] {
    const tasks: MigrationTask[] = []
    this.#slots.forEach((slot, shard) => {
      if (slot.state !== state || slot.source === undefined) return
      const { gid, servers, handOffConfigNum } = slot.source
      tasks.push({ shard, configNum: this.#config.num, fromGid: gid, servers, handOffConfigNum })
    })
    return tasks
  }

  #drop(slot: Slot): void {
    Object.assign(slot, emptySlot())
  }

  #isShard(shard: number): boolean {
    return Number.isSafeInteger(shard) && shard >= 0 && shard < this.nShards
  }

  #slot(shard: number): Slot {
    const slot = this.#slots[shard]
    if (slot === undefined) throw new RangeError(`shard ${shard} is not in [0, ${this.nShards})`)
    return slot
  }
}

const emptySlot = (): Slot => ({
  state: "Absent",
  kv: undefined,
  bytes: undefined,
  checksum: undefined,
  snapshotJob: undefined,
  source: undefined,
  incoming: undefined,
})

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0

const concat = (parts: readonly Uint8Array[]): Uint8Array => {
  if (parts.length === 1) return parts[0]!
  let length = 0
  for (const part of parts) length += part.length
  const out = new Uint8Array(length)
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}

/** `[gid, servers, configNum]` from a snapshot. */
const parseHolder = <T>(
  raw: unknown,
  corrupt: (what: string) => Error,
  what: string,
  make: (gid: Gid, servers: readonly string[], configNum: number) => T,
): T => {
  const [gid, servers, configNum] = Array.isArray(raw) ? (raw as unknown[]) : []
  if (!isCount(gid) || !isCount(configNum) || !Array.isArray(servers) || !servers.every((s) => typeof s === "string")) {
    throw corrupt(what)
  }
  return make(gid as Gid, servers as string[], configNum)
}

/** Whether a command grants, renews or revokes a lease, or attaches a key to one. */
const usesLease = (op: KvOp): boolean => {
  switch (op.op) {
    case "leaseGrant":
    case "leaseKeepAlive":
    case "leaseRevoke":
      return true
    case "put":
    case "casPut":
      return op.lease !== undefined
    case "txn":
      return [...op.success, ...op.failure].some((o) => o.op === "put" && o.lease !== undefined)
    default:
      return false
  }
}
