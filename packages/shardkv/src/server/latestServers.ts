import { monotonicMs } from "@kv/kvraft"
import type { Config, Gid } from "@kv/shardctrler"
import { type Clock, Effect } from "effect"
import { sameEndpoint } from "./members.ts"

/** Reads of the latest configuration this class makes at most this often. */
const MIN_READ_INTERVAL_MS = 500

/**
 * Other groups' servers as the latest configuration this replica has read names them. The list a
 * migration starts from (the one in the configuration that moved the shard) goes out of date when
 * a group replaces members: the group then tells the controller, whose next configuration carries
 * the new list. Migration reaches a group at both, and a request from a member the older list does
 * not name yet is known by the newer one.
 */
export class LatestServers {
  #latest: Config | undefined
  #readAtMs = Number.NEGATIVE_INFINITY

  constructor(
    private readonly readLatest: Effect.Effect<Config, unknown>,
    private readonly clock: Clock.Clock,
  ) {}

  /** Keeps `config` if it is newer than the latest one seen (any configuration read elsewhere). */
  observe(config: Config): void {
    if (this.#latest === undefined || config.num > this.#latest.num) this.#latest = config
  }

  /** `servers` (a configuration's list for `gid`) after the latest configuration's servers of the gid. */
  of(gid: Gid, servers: readonly string[]): readonly string[] {
    const latest = this.#latest?.groups[String(gid)] ?? []
    if (latest.length === 0) return servers
    return [...latest, ...servers.filter((s) => !latest.some((l) => sameEndpoint(l, s)))]
  }

  /** Reads the latest configuration again, unless that was done a moment ago. Never fails. */
  get refresh(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const now = monotonicMs(this.clock)
      if (now - this.#readAtMs < MIN_READ_INTERVAL_MS) return Effect.void
      this.#readAtMs = now
      return this.readLatest.pipe(
        Effect.tap((config) => Effect.sync(() => this.observe(config))),
        Effect.ignore,
      )
    })
  }

  /** Whether the latest configuration names `from` a server of `gid` (read again if it does not, at most so often). */
  lists(gid: Gid, from: string): Effect.Effect<boolean> {
    const listed = () => (this.#latest?.groups[String(gid)] ?? []).some((s) => sameEndpoint(s, from))
    return Effect.suspend(() => (listed() ? Effect.succeed(true) : this.refresh.pipe(Effect.map(listed))))
  }
}
