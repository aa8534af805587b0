/**
 * The state machine of one shard replica group: which configuration the group has reached, and
 * for every shard its migration state and (when held) its KvStateMachine — the shard's data and
 * its client sessions, which travel together so that writes stay exactly-once across moves.
 *
 * Pure and deterministic: every replica of the group that applies the same log holds the same
 * state. Ownership is checked when a client write is applied, not only when it arrives.
 */
import { type KvCommand, type KvLimits, type KvOp, KvStateMachine, resolveKvLimits, utf8ByteLength } from "@kv/kvraft"
import { type Config, type Gid, initialConfig, noGroup, shardOf } from "@kv/shardctrler"
import { Decoder, Encoder } from "@msgpack/msgpack"
import { parseConfig, type ShardCommand } from "./command.ts"
import { type GetResult, ignored, notReady, type ShardResult, wrongGroup } from "./result.ts"
import { holdsData, type ShardState, servesClients, shardStateCode, shardStateCodes } from "./shardState.ts"

export interface ShardStateMachineOptions {
  /** The replica group this state machine belongs to. */
  readonly gid: Gid
  /** Fixed for the cluster's lifetime; every configuration has this many shards. */
  readonly nShards: number
  readonly limits?: Partial<KvLimits>
}

/** A shard in motion and the group on the other side of the move (from the previous configuration). */
export interface MigrationTask {
  readonly shard: number
  /** The configuration that moved the shard. */
  readonly configNum: number
  readonly fromGid: Gid
  readonly servers: readonly string[]
}

/** What the group can give a puller asking for `shard` as handed off at `configNum`. */
export type HandOff =
  | { readonly kind: "data"; readonly bytes: Uint8Array }
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
}

const snapshotVersion = 1

// Snapshots are rare and large; separate instances keep the command codec's buffers small.
const snapshotEncoder = new Encoder()
const snapshotDecoder = new Decoder()

const encodeConfig = (c: Config) => [c.num, c.shards, c.groups]

export class ShardStateMachine {
  readonly gid: Gid
  readonly nShards: number
  readonly limits: KvLimits
  #config: Config
  #prevConfig: Config
  #slots: Slot[]

  constructor(options: ShardStateMachineOptions) {
    if (!Number.isSafeInteger(options.gid) || options.gid <= 0) {
      throw new RangeError(`a shard group's gid must be a positive integer, got ${options.gid}`)
    }
    this.gid = options.gid
    this.nShards = options.nShards
    this.limits = resolveKvLimits(options.limits)
    this.#config = initialConfig(options.nShards)
    this.#prevConfig = this.#config
    this.#slots = Array.from({ length: options.nShards }, () => ({ state: "Absent", kv: undefined, bytes: undefined }))
  }

  /** The configuration the group has reached. */
  get config(): Config {
    return this.#config
  }

  /** The configuration before it (configuration 0 before configuration 1 is reached). */
  get prevConfig(): Config {
    return this.#prevConfig
  }

  shardState(shard: number): ShardState {
    return this.#slot(shard).state
  }

  shardStates(): ShardState[] {
    return this.#slots.map((slot) => slot.state)
  }

  /** Keys held in each shard (0 where no data is held). */
  shardKeyCounts(): number[] {
    return this.#slots.map((slot) => slot.kv?.size() ?? 0)
  }

  /** Client sessions held over all shards (a client with keys in several shards counts once per shard). */
  sessionCount(): number {
    return this.#slots.reduce((sum, slot) => sum + (slot.kv?.sessions.count() ?? 0), 0)
  }

  /** The group may move to the next configuration only once no shard is in motion. */
  canReconfigure(): boolean {
    return this.#slots.every((slot) => slot.state === "Serving" || slot.state === "Absent")
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
      case "insertShard":
        return this.#insertShard(command.configNum, command.shard, command.data)
      case "deleteShard":
        return this.#deleteShard(command.configNum, command.shard)
      case "gcDone":
        return this.#gcDone(command.configNum, command.shard)
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
   * The error a write would get if applied now, or undefined: lets the leader refuse early.
   * Applying checks again, since ownership and values change meanwhile.
   */
  precheck(op: KvOp): ShardResult | undefined {
    const shard = shardOf(op.key, this.nShards)
    const kv = this.#serving(shard)
    if (kv === undefined) return this.#wrongGroup(shard)
    return kv.precheck(op)
  }

  /** The shard's data for a puller, as frozen when the group moved to `configNum`. */
  handOff(configNum: number, shard: number): HandOff {
    if (!this.#isShard(shard)) return { kind: "gone" }
    if (this.#config.num < configNum) return { kind: "notReady" }
    const slot = this.#slot(shard)
    if (this.#config.num > configNum || slot.state !== "HandingOff" || slot.kv === undefined) return { kind: "gone" }
    slot.bytes ??= slot.kv.snapshot()
    return { kind: "data", bytes: slot.bytes }
  }

  /**
   * Whether the copy of `shard` handed off at `configNum` is gone. A group moves past a
   * configuration only with no shard handing off, so a later configuration means deleted.
   */
  deleteStatus(configNum: number, shard: number): DeleteStatus {
    if (this.#config.num < configNum) return "notReady"
    if (this.#config.num > configNum || !this.#isShard(shard)) return "done"
    return this.#slot(shard).state === "HandingOff" ? "pending" : "done"
  }

  /**
   * msgpack `[version, gid, config, prevConfig, shards]`, where `shards` lists per shard its state
   * code followed, for states that hold data, by the shard's KvStateMachine snapshot.
   */
  snapshot(): Uint8Array {
    const shards: (number | Uint8Array)[] = []
    for (const slot of this.#slots) {
      shards.push(shardStateCode(slot.state))
      if (!holdsData(slot.state)) continue
      if (slot.kv === undefined) throw new Error(`ShardStateMachine: shard in state ${slot.state} has no data`)
      slot.bytes ??= slot.kv.snapshot()
      shards.push(slot.bytes)
    }
    return snapshotEncoder.encode([
      snapshotVersion,
      this.gid,
      encodeConfig(this.#config),
      encodeConfig(this.#prevConfig),
      shards,
    ])
  }

  /** Rebuilds a state machine from `snapshot()` bytes. Throws an Error saying what is wrong if corrupt. */
  static restore(bytes: Uint8Array, options: ShardStateMachineOptions): ShardStateMachine {
    const corrupt = (what: string, cause?: unknown) =>
      new Error(`ShardStateMachine.restore: corrupt snapshot: ${what}`, cause === undefined ? undefined : { cause })
    let decoded: unknown
    try {
      decoded = snapshotDecoder.decode(bytes)
    } catch (cause) {
      throw corrupt(`not msgpack (${String(cause)})`, cause)
    }
    if (!Array.isArray(decoded) || decoded.length !== 5) throw corrupt("expected [version, gid, config, prev, shards]")
    const [version, gid, config, prevConfig, shards] = decoded as unknown[]
    if (version !== snapshotVersion)
      throw new Error(`ShardStateMachine.restore: unsupported version ${String(version)}`)
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
      try {
        slot.kv = KvStateMachine.restore(data, machine.limits)
      } catch (cause) {
        throw corrupt(`shard ${shard}: ${(cause as Error).message}`, cause)
      }
    }
    if (at !== shards.length) throw corrupt("trailing shard entries")
    return machine
  }

  #parseSnapshotConfig(raw: unknown, name: string, corrupt: (what: string) => Error): Config {
    const fields = Array.isArray(raw) && raw.length === 3 ? (raw as unknown[]) : []
    const config = parseConfig(fields[0], fields[1], fields[2])
    if (config === undefined || config.shards.length !== this.nShards) throw corrupt(`${name} is not a configuration`)
    return config
  }

  #applyClient(command: KvCommand): ShardResult {
    const shard = shardOf(command.op.key, this.nShards)
    const kv = this.#serving(shard)
    if (kv === undefined) return this.#wrongGroup(shard)
    // Even a duplicate touches the session (floor, activity), so the cached bytes go stale.
    this.#slot(shard).bytes = undefined
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
      const ownedBefore = current.shards[shard] === this.gid
      const ownedAfter = next.shards[shard] === this.gid
      if (ownedBefore && ownedAfter) continue
      if (ownedBefore) {
        // A shard that goes to no group has no one to hand it to: like the controller's
        // configurations say, whoever gets it next starts it empty. Keeping it frozen instead
        // would block this group's later reconfigurations forever.
        if (next.shards[shard] === noGroup) this.#drop(slot)
        else slot.state = "HandingOff"
      } else if (ownedAfter) {
        if (current.shards[shard] === noGroup) {
          slot.state = "Serving"
          slot.kv = new KvStateMachine(this.limits)
          slot.bytes = undefined
        } else {
          slot.state = "Pulling"
        }
      }
    }
    this.#prevConfig = current
    this.#config = next
    return { ok: true }
  }

  #insertShard(configNum: number, shard: number, data: Uint8Array): ShardResult {
    if (!this.#isShard(shard) || configNum !== this.#config.num || this.#slot(shard).state !== "Pulling") {
      return ignored(`shard ${shard} is not being pulled for configuration ${configNum}`)
    }
    let kv: KvStateMachine
    try {
      kv = KvStateMachine.restore(data, this.limits)
    } catch (cause) {
      // Every replica decides the same way; the puller fetches the shard again.
      return ignored(`shard ${shard} data is corrupt: ${(cause as Error).message}`)
    }
    const slot = this.#slot(shard)
    slot.kv = kv
    slot.bytes = undefined
    slot.state = "AwaitingGc"
    return { ok: true }
  }

  #deleteShard(configNum: number, shard: number): ShardResult {
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
    this.#slot(shard).state = "Serving"
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
      if (slot.state !== state) return
      const fromGid = this.#prevConfig.shards[shard] ?? noGroup
      tasks.push({
        shard,
        configNum: this.#config.num,
        fromGid,
        servers: this.#prevConfig.groups[String(fromGid)] ?? [],
      })
    })
    return tasks
  }

  #drop(slot: Slot): void {
    slot.state = "Absent"
    slot.kv = undefined
    slot.bytes = undefined
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
