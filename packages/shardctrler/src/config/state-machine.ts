/**
 * The shard controller's replicated state machine: the full history of configurations,
 * changed only by `apply`. Every replica applies the same log, so `apply` is a pure
 * function of the history and the operation: no clocks, no randomness, and nothing
 * that depends on the order in which an operation's object keys or gid lists arrive.
 */
import {
  type Config,
  configGids,
  configGroups,
  defaultShardCount,
  type Gid,
  initialConfig,
  isGid,
  makeConfig,
  noGroup,
  sortGids,
} from "./config.ts"
import { type ConfigError, type ConfigOp, type ConfigResult, configError } from "./ops.ts"
import { rebalance } from "./rebalance.ts"

/** Everything needed to rebuild a `ConfigStateMachine`; plain data, msgpack/JSON friendly. */
export interface ConfigSnapshot {
  readonly nShards: number
  readonly configs: readonly Config[]
  /**
   * `[gid, incarnation, lastConfig, startAfter]` per registered group (absent in older snapshots;
   * `startAfter` absent before successors carried on from their predecessor's configuration).
   */
  readonly incarnations?: readonly (readonly [number, string, number, number?])[]
  /** Gids that can never be used again (absent in older snapshots). */
  readonly retired?: readonly number[]
  /** `[gid, servers]`: server lists groups sent after they left (absent in older snapshots). */
  readonly departedServers?: readonly (readonly [number, readonly string[]])[]
}

/** The incarnation of a group that last registered, and the latest configuration it said it acts in. */
interface Incarnation {
  readonly incarnation: string
  readonly lastConfig: number
  /**
   * For an incarnation that took over its gid: the last configuration its predecessor acted in.
   * It carries on from there, so configurations that joined and left the gid meanwhile, while no
   * incarnation was acting, are still carried out (their shards pulled and handed on).
   */
  readonly startAfter: number
}

/** What the controller knows of a gid's current incarnation. */
export interface IncarnationInfo {
  readonly incarnation: string
  readonly startAfter: number
}

export class ConfigStateMachine {
  readonly nShards: number
  /** history[n].num === n; history[0] is `initialConfig(nShards)`. Never empty. */
  #history: Config[]
  /**
   * Which incarnation of each gid is alive. A group whose data directories were all lost comes
   * back as a new incarnation under the old gid: it may take over only if the old one had left
   * (was last seen acting in a configuration without the gid), since then nothing it held is
   * needed; otherwise the old one's shards are lost with it and the gid is retired for good.
   */
  #incarnations = new Map<Gid, Incarnation>()
  #retired = new Set<Gid>()
  /**
   * A group that left may still finish migrations of configurations it was in (pull shards, hand
   * them on), and may replace members meanwhile. Its new list cannot go in a configuration (it is
   * in none), so it is kept here, for the groups it migrates with to know its new members.
   */
  #departedServers = new Map<Gid, readonly string[]>()

  constructor(nShards: number = defaultShardCount) {
    this.#history = [initialConfig(nShards)]
    this.nShards = nShards
  }

  apply(op: ConfigOp): ConfigResult {
    switch (op.op) {
      case "join":
        return this.#join(op.groups)
      case "leave":
        return this.#leave(op.gids)
      case "move":
        return this.#move(op.shard, op.gid)
      case "servers":
        return this.#servers(op.gid, op.servers)
      case "query":
        return this.#query(op.num)
      case "register":
        return this.#register(op.gid, op.incarnation, op.configNum)
      case "succeed":
        return this.#succeed(op.gid, op.incarnation)
      default:
        return configError("BadRequest", `unknown operation ${JSON.stringify((op as { op?: unknown }).op)}`)
    }
  }

  latest(): Config {
    const latest = this.#history[this.#history.length - 1]
    if (latest === undefined) throw new Error("ConfigStateMachine: empty history")
    return latest
  }

  /** Configuration `num`, or the latest when `num` is -1 or past the latest. */
  query(num: number): Config {
    const config = num < 0 ? undefined : this.#history[num]
    return config ?? this.latest()
  }

  /** The whole history, oldest first; entry n has `num` n. */
  configs(): readonly Config[] {
    return [...this.#history]
  }

  snapshot(): ConfigSnapshot {
    return {
      nShards: this.nShards,
      configs: [...this.#history],
      incarnations: [...this.#incarnations].map(
        ([gid, i]) => [gid, i.incarnation, i.lastConfig, i.startAfter] as const,
      ),
      retired: [...this.#retired],
      departedServers: [...this.#departedServers],
    }
  }

  /** The gid's current incarnation, if one registered or took over. */
  incarnationOf(gid: number): IncarnationInfo | undefined {
    const known = this.#incarnations.get(gid as Gid)
    return known === undefined ? undefined : { incarnation: known.incarnation, startAfter: known.startAfter }
  }

  /**
   * The servers of `gid`: the latest configuration's list; for a gid that left, the list it sent
   * since, else the last configuration's that named it; none for a gid never joined.
   */
  serversOf(gid: number): readonly string[] {
    const latest = this.latest().groups[String(gid)]
    if (latest !== undefined) return latest
    const departed = this.#departedServers.get(gid as Gid)
    if (departed !== undefined) return departed
    for (let k = this.#history.length - 1; k >= 0; k--) {
      const listed = this.#history[k]?.groups[String(gid)]
      if (listed !== undefined) return listed
    }
    return []
  }

  /** Whether `gid` was retired: its data was lost while it was needed, and it may not be used again. */
  isRetired(gid: number): boolean {
    return this.#retired.has(gid as Gid)
  }

  /**
   * Replaces the history with a snapshot's. A snapshot that does not describe a valid
   * history for this shard count is a broken invariant (corrupt storage or a replica
   * built with another shard count), so it throws rather than limping on.
   */
  restore(snapshot: unknown): void {
    this.#history = decodeHistory(snapshot, this.nShards)
    const { incarnations, retired, departedServers } = snapshot as {
      incarnations?: unknown
      retired?: unknown
      departedServers?: unknown
    }
    this.#incarnations = new Map()
    this.#retired = new Set()
    this.#departedServers = new Map()
    for (const entry of Array.isArray(incarnations) ? (incarnations as unknown[]) : []) {
      // Snapshots from before `startAfter` existed have three fields: 0 means "from the start".
      const [gid, incarnation, lastConfig, startAfter = 0] = Array.isArray(entry) ? (entry as unknown[]) : []
      if (
        !isGid(gid) ||
        typeof incarnation !== "string" ||
        !Number.isSafeInteger(lastConfig) ||
        !Number.isSafeInteger(startAfter)
      ) {
        throw corrupt(`incarnation entry ${JSON.stringify(entry)}`)
      }
      this.#incarnations.set(gid, {
        incarnation,
        lastConfig: lastConfig as number,
        startAfter: startAfter as number,
      })
    }
    for (const gid of Array.isArray(retired) ? (retired as unknown[]) : []) {
      if (!isGid(gid)) throw corrupt(`retired gid ${JSON.stringify(gid)}`)
      this.#retired.add(gid)
    }
    for (const entry of Array.isArray(departedServers) ? (departedServers as unknown[]) : []) {
      const [gid, servers] = Array.isArray(entry) ? (entry as unknown[]) : []
      if (!isGid(gid) || checkServers(gid, servers) !== undefined) {
        throw corrupt(`departed group entry ${JSON.stringify(entry)}`)
      }
      this.#departedServers.set(gid, servers as string[])
    }
  }

  static fromSnapshot(snapshot: unknown): ConfigStateMachine {
    const nShards = (snapshot as { nShards?: unknown } | null)?.nShards
    if (typeof nShards !== "number" || !Number.isSafeInteger(nShards) || nShards < 1) {
      throw corrupt(`nShards is ${String(nShards)}`)
    }
    const machine = new ConfigStateMachine(nShards)
    machine.restore(snapshot)
    return machine
  }

  #join(requested: unknown): ConfigResult {
    if (typeof requested !== "object" || requested === null || Array.isArray(requested)) {
      return configError("BadRequest", "join: groups must be an object of gid -> servers")
    }
    // Keys are examined in sorted order so that which error is reported never depends
    // on the order the client built its object in.
    const keys = Object.keys(requested).sort()
    if (keys.length === 0) return configError("BadRequest", "join: no groups given")
    const latest = this.latest()
    const groups = configGroups(latest)
    for (const key of keys) {
      const gid = parseGidKey(key)
      if (gid === undefined) {
        return configError("BadGid", `join: gid must be a positive integer, got ${JSON.stringify(key)}`)
      }
      const servers: unknown = (requested as Record<string, unknown>)[key]
      const bad = checkServers(gid, servers)
      if (bad !== undefined) return bad
      if (this.#retired.has(gid)) {
        return configError(
          "GidRetired",
          `join: gid ${gid} is retired (its group lost its data while it still held shards); ` +
            "start the new group under an unused gid",
        )
      }
      if (groups.has(gid)) {
        return configError(
          "GroupExists",
          `join: gid ${gid} is already in configuration ${latest.num}; to change its replicas, ` +
            "add a group under a new gid and have this one leave",
        )
      }
      groups.set(gid, servers as string[])
    }
    for (const key of keys) this.#departedServers.delete(Number(key) as Gid)
    return this.#append(rebalance(latest.shards, groups.keys()), groups)
  }

  #leave(requested: unknown): ConfigResult {
    if (!Array.isArray(requested) || requested.length === 0) {
      return configError("BadRequest", "leave: gids must be a non-empty list")
    }
    const invalid = requested.filter((gid) => !isGid(gid))
    if (invalid.length > 0) {
      const shown = invalid.map((gid) => JSON.stringify(gid) ?? String(gid)).sort()
      return configError("BadGid", `leave: gids must be positive integers, got ${shown.join(", ")}`)
    }
    const latest = this.latest()
    const groups = configGroups(latest)
    const leaving = sortGids(new Set(requested as Gid[]))
    const unknown = leaving.filter((gid) => !groups.has(gid))
    if (unknown.length > 0) {
      return configError(
        "UnknownGroup",
        `leave: gid ${unknown.join(", ")} not in configuration ${latest.num}; \`kv admin query\` lists the groups`,
      )
    }
    for (const gid of leaving) groups.delete(gid)
    return this.#append(rebalance(latest.shards, groups.keys()), groups)
  }

  #move(shard: unknown, gid: unknown): ConfigResult {
    if (typeof shard !== "number" || !Number.isInteger(shard) || shard < 0 || shard >= this.nShards) {
      return configError(
        "BadShard",
        `move: shard must be an integer in [0, ${this.nShards}), got ${JSON.stringify(shard)}`,
      )
    }
    if (!isGid(gid)) {
      return configError("BadGid", `move: gid must be a positive integer, got ${JSON.stringify(gid)}`)
    }
    const latest = this.latest()
    const groups = configGroups(latest)
    if (!groups.has(gid)) {
      return configError(
        "UnknownGroup",
        `move: gid ${gid} not in configuration ${latest.num}; join it first (\`kv admin join ${gid}\`)`,
      )
    }
    const shards = [...latest.shards]
    shards[shard] = gid
    return this.#append(shards, groups)
  }

  /**
   * A group's new server list (members added, promoted or removed in its Raft group): every group
   * follows configurations one at a time, so the list reaches clients and the other groups as a
   * configuration of its own, which moves no shard.
   */
  #servers(gid: unknown, servers: unknown): ConfigResult {
    if (!isGid(gid)) {
      return configError("BadGid", `servers: gid must be a positive integer, got ${JSON.stringify(gid)}`)
    }
    const bad = checkServers(gid, servers, "servers")
    if (bad !== undefined) return bad
    if (this.#retired.has(gid)) return retiredError(gid)
    const latest = this.latest()
    const groups = configGroups(latest)
    const current = groups.get(gid)
    if (current === undefined && this.serversOf(gid).length > 0) {
      // A group that left, still finishing its migrations: no configuration, only its list here.
      this.#departedServers.set(gid, servers as readonly string[])
      return { ok: true, config: latest }
    }
    if (current === undefined) {
      return configError(
        "UnknownGroup",
        `servers: gid ${gid} not in configuration ${latest.num}; join it first (\`kv admin join ${gid}\`)`,
      )
    }
    const next = servers as readonly string[]
    if (current.length === next.length && current.every((server, k) => server === next[k])) {
      return { ok: true, config: latest }
    }
    groups.set(gid, next)
    return this.#append(latest.shards, groups)
  }

  #register(gid: unknown, incarnation: unknown, configNum: unknown): ConfigResult {
    if (!isGid(gid) || typeof incarnation !== "string" || incarnation.length === 0) {
      return configError("BadRequest", "register: needs a gid and an incarnation")
    }
    if (typeof configNum !== "number" || !Number.isSafeInteger(configNum) || configNum < 0) {
      return configError("BadRequest", `register: bad configuration number ${JSON.stringify(configNum)}`)
    }
    if (this.#retired.has(gid)) return retiredError(gid)
    const known = this.#incarnations.get(gid)
    if (known !== undefined && known.incarnation !== incarnation) {
      return configError("Successor", `gid ${gid} belongs to another incarnation of its group`)
    }
    this.#incarnations.set(gid, {
      incarnation,
      lastConfig: Math.max(known?.lastConfig ?? 0, configNum),
      startAfter: known?.startAfter ?? 0,
    })
    return { ok: true }
  }

  #succeed(gid: unknown, incarnation: unknown): ConfigResult {
    if (!isGid(gid) || typeof incarnation !== "string" || incarnation.length === 0) {
      return configError("BadRequest", "succeed: needs a gid and an incarnation")
    }
    if (this.#retired.has(gid)) return retiredError(gid)
    const known = this.#incarnations.get(gid)
    if (known?.incarnation === incarnation) return { ok: true }
    if (known !== undefined) {
      const lastSeen = this.query(known.lastConfig)
      if (configGroups(lastSeen).has(gid)) {
        this.#retired.add(gid)
        return retiredError(gid)
      }
    }
    const startAfter = known?.lastConfig ?? 0
    this.#incarnations.set(gid, { incarnation, lastConfig: startAfter, startAfter })
    return { ok: true }
  }

  #query(num: unknown): ConfigResult {
    if (typeof num !== "number" || !Number.isSafeInteger(num) || num < -1) {
      return configError("BadRequest", `query: num must be -1 or a configuration number, got ${JSON.stringify(num)}`)
    }
    return { ok: true, config: this.query(num) }
  }

  #append(shards: readonly Gid[], groups: ReadonlyMap<Gid, readonly string[]>): ConfigResult {
    const config = makeConfig(this.latest().num + 1, shards, groups)
    this.#history.push(config)
    return { ok: true, config }
  }
}

/** A gid object key in canonical decimal form ("7", not "07", "7.0" or "+7"). */
const parseGidKey = (key: string): Gid | undefined => {
  if (!/^[1-9][0-9]*$/.test(key)) return undefined
  const gid = Number(key)
  return isGid(gid) ? gid : undefined
}

const checkServers = (gid: Gid, servers: unknown, op = "join"): ConfigError | undefined => {
  if (!Array.isArray(servers) || servers.length === 0) {
    return configError("BadRequest", `${op}: gid ${gid} has no servers`)
  }
  if (!servers.every((server) => typeof server === "string" && server.length > 0)) {
    return configError("BadRequest", `${op}: gid ${gid} has a server address that is not a non-empty string`)
  }
  return undefined
}

const retiredError = (gid: Gid): ConfigError =>
  configError(
    "GidRetired",
    `gid ${gid} is retired: its group lost its data while it still held shards, which are lost with it; ` +
      "start the new group under an unused gid",
  )

const corrupt = (why: string): Error => new Error(`corrupt shard-controller snapshot: ${why}`)

const decodeHistory = (snapshot: unknown, nShards: number): Config[] => {
  if (typeof snapshot !== "object" || snapshot === null) throw corrupt("not an object")
  const { nShards: snapshotShards, configs } = snapshot as { nShards?: unknown; configs?: unknown }
  if (snapshotShards !== nShards) {
    throw corrupt(`it has ${String(snapshotShards)} shards, this controller has ${nShards}`)
  }
  if (!Array.isArray(configs) || configs.length === 0) throw corrupt("no configurations")
  const history = configs.map((config, index) => decodeConfig(config, index, nShards))
  const first = history[0]
  if (first !== undefined && (first.shards.some((gid) => gid !== noGroup) || configGids(first).length > 0)) {
    throw corrupt("configuration 0 is not the initial configuration")
  }
  return history
}

const decodeConfig = (value: unknown, index: number, nShards: number): Config => {
  if (typeof value !== "object" || value === null) throw corrupt(`configuration ${index} is not an object`)
  const { num, shards, groups } = value as { num?: unknown; shards?: unknown; groups?: unknown }
  if (num !== index) throw corrupt(`configuration at position ${index} has num ${String(num)}`)
  if (typeof groups !== "object" || groups === null || Array.isArray(groups)) {
    throw corrupt(`configuration ${index} has no groups object`)
  }
  const decodedGroups = new Map<Gid, readonly string[]>()
  for (const [key, servers] of Object.entries(groups)) {
    const gid = parseGidKey(key)
    if (gid === undefined) throw corrupt(`configuration ${index} has group key ${JSON.stringify(key)}`)
    if (checkServers(gid, servers) !== undefined) throw corrupt(`configuration ${index} gid ${gid} servers`)
    decodedGroups.set(gid, servers as string[])
  }
  if (!Array.isArray(shards) || shards.length !== nShards) {
    throw corrupt(`configuration ${index} does not have ${nShards} shards`)
  }
  for (const gid of shards) {
    if (gid !== noGroup && !(isGid(gid) && decodedGroups.has(gid))) {
      throw corrupt(`configuration ${index} places a shard on gid ${String(gid)}, which it does not have`)
    }
  }
  return makeConfig(index, shards as Gid[], decodedGroups)
}
