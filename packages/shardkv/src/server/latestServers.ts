import { monotonicMs } from "@kv/kvraft"
import { isSourceOf } from "@kv/rpc"
import type { Config, Gid } from "@kv/shardctrler"
import { type Clock, Effect } from "effect"
import { sameEndpoint } from "./members.ts"

/** Reads of the latest configuration (or of one departed group's list) this class makes at most this often. */
const MIN_READ_INTERVAL_MS = 500

interface DepartedList {
  readonly servers: readonly string[]
  readonly readAtMs: number
}

/**
 * Other groups' servers as the latest configuration this replica has read names them. The list a
 * migration starts from (the one in the configuration that moved the shard) goes out of date when
 * a group replaces members: the group then tells the controller, whose next configuration carries
 * the new list. Migration reaches a group at both, and a request from a member the older list does
 * not name yet is known by the newer one.
 *
 * A group that left is in no newer configuration, yet may still finish migrations of the ones it
 * was in, and replace members meanwhile: its list then comes from the controller's record of
 * departed groups (`serversOf`).
 */
export class LatestServers {
  #latest: Config | undefined
  #readAtMs = Number.NEGATIVE_INFINITY
  readonly #departed = new Map<Gid, DepartedList>()

  constructor(
    private readonly readLatest: Effect.Effect<Config, unknown>,
    private readonly readServersOf: (gid: Gid) => Effect.Effect<readonly string[], unknown>,
    private readonly clock: Clock.Clock,
  ) {}

  /** Keeps `config` if it is newer than the latest one seen (any configuration read elsewhere). */
  observe(config: Config): void {
    if (this.#latest === undefined || config.num > this.#latest.num) this.#latest = config
  }

  /** The gid's servers by the latest configuration, or the departed group's list last read. */
  #known(gid: Gid): readonly string[] {
    const listed = this.#latest?.groups[String(gid)]
    if (listed !== undefined) return listed
    return this.#departed.get(gid)?.servers ?? []
  }

  /** `servers` (a configuration's list for `gid`) after the gid's latest known servers. */
  of(gid: Gid, servers: readonly string[]): readonly string[] {
    const latest = this.#known(gid)
    if (latest.length === 0) return servers
    return [...latest, ...servers.filter((s) => !latest.some((l) => sameEndpoint(l, s)))]
  }

  /**
   * Reads the latest configuration again, unless that was done a moment ago; with `gid`, also the
   * list of that group if it has left. Never fails.
   */
  refresh(gid?: Gid): Effect.Effect<void> {
    return Effect.suspend(() => {
      const now = monotonicMs(this.clock)
      const config =
        now - this.#readAtMs < MIN_READ_INTERVAL_MS
          ? Effect.void
          : Effect.sync(() => {
              this.#readAtMs = now
            }).pipe(
              Effect.andThen(this.readLatest),
              Effect.tap((latest) => Effect.sync(() => this.observe(latest))),
              Effect.ignore,
            )
      return config.pipe(Effect.andThen(gid === undefined ? Effect.void : this.#refreshDeparted(gid)))
    })
  }

  #refreshDeparted(gid: Gid): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.#latest?.groups[String(gid)] !== undefined) return Effect.void
      const now = monotonicMs(this.clock)
      const known = this.#departed.get(gid)
      if (known !== undefined && now - known.readAtMs < MIN_READ_INTERVAL_MS) return Effect.void
      this.#departed.set(gid, { servers: known?.servers ?? [], readAtMs: now })
      return this.readServersOf(gid).pipe(
        Effect.tap((servers) => Effect.sync(() => this.#departed.set(gid, { servers, readAtMs: now }))),
        Effect.ignore,
      )
    })
  }

  /** Whether `gid`'s latest known servers name `from` (read again if they do not, at most so often). */
  lists(gid: Gid, from: string): Effect.Effect<boolean> {
    const listed = () => this.#known(gid).some((s) => isSourceOf(s, from))
    return Effect.suspend(() => (listed() ? Effect.succeed(true) : this.refresh(gid).pipe(Effect.map(listed))))
  }

  /** The gid's servers as the controller has them now: the latest configuration's, or a departed group's list. */
  current(gid: Gid): Effect.Effect<readonly string[], unknown> {
    return this.readLatest.pipe(
      Effect.tap((latest) => Effect.sync(() => this.observe(latest))),
      Effect.flatMap((latest) => {
        const listed = latest.groups[String(gid)]
        if (listed !== undefined) return Effect.succeed(listed)
        return this.readServersOf(gid).pipe(
          Effect.tap((servers) =>
            Effect.sync(() => this.#departed.set(gid, { servers, readAtMs: monotonicMs(this.clock) })),
          ),
        )
      }),
    )
  }
}
