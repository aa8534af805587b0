/**
 * A shard group's incarnation: the id its log was started with, registered with the controller
 * before the group acts in a configuration that changes its membership. A group whose data
 * directories were all lost comes back as a new incarnation; if its predecessor had left, it
 * skips the configurations the predecessor lived through (it could not replay them: the shards
 * it would pull from those days are long gone), and if the predecessor vanished while it held
 * shards the controller retires the gid and this group refuses to take part.
 */

import type { Timeout } from "@kv/kvraft"
import type { ControllerClientShape, ControllerError, Gid } from "@kv/shardctrler"
import { type Config, noGroup } from "@kv/shardctrler"
import { Effect, Random } from "effect"
import type { ShardCommand, ShardHolder, ShardResult, ShardStateMachine } from "../stateMachine/index.ts"

export type RegistrationState =
  | { readonly kind: "pending" }
  | { readonly kind: "registered"; readonly incarnation: string; readonly configNum: number }
  | { readonly kind: "retired"; readonly message: string }

export interface IncarnationDeps {
  readonly gid: Gid
  readonly controller: ControllerClientShape
  readonly machine: () => ShardStateMachine
  readonly submit: (command: ShardCommand) => Effect.Effect<ShardResult, unknown>
  /** A new, unique incarnation id. */
  readonly newIncarnation: Effect.Effect<string>
  readonly configAt: (num: number) => Effect.Effect<Config | undefined>
  readonly log: (message: string) => void
}

export const isMember = (config: Config, gid: Gid): boolean => String(gid) in config.groups

/** 128 random bits as 32 hex digits: unique per incarnation of a gid. */
export const randomIncarnationId: Effect.Effect<string> = Effect.gen(function* () {
  let id = ""
  for (let i = 0; i < 4; i++) id += (yield* Random.nextIntBetween(0, 2 ** 32 - 1)).toString(16).padStart(8, "0")
  return id
})

/** Registration as seen by this replica's leader loop; `retired` is final. */
export class Incarnation {
  state: RegistrationState = { kind: "pending" }

  constructor(private readonly deps: IncarnationDeps) {}

  get retired(): boolean {
    return this.state.kind === "retired"
  }

  /**
   * True once the controller knows this incarnation acts in `configNum`; false while that is not
   * settled yet (the caller tries again on its next round).
   */
  ensure(configNum: number): Effect.Effect<boolean> {
    const { deps } = this
    const self = this
    return Effect.gen(function* () {
      if (self.retired) return false
      const machine = deps.machine()
      const incarnation = machine.incarnation
      if (incarnation === undefined) {
        yield* deps.submit({ type: "incarnate", incarnation: yield* deps.newIncarnation })
        return false
      }
      const state = self.state
      if (state.kind === "registered" && state.incarnation === incarnation && state.configNum >= configNum) return true
      const fresh = machine.config.num === 0 && machine.shardStates().every((s) => s === "Absent")
      const registered = yield* deps.controller.register(deps.gid, incarnation, configNum).pipe(Effect.result)
      if (registered._tag === "Failure") {
        const failure = registered.failure
        if (failure._tag !== "ControllerError") return false
        if (failure.code === "GidRetired") return self.#retire(failure)
        if (failure.code !== "Successor") return false
        if (!fresh) {
          deps.log(`group ${deps.gid}: another incarnation of this gid is registered; is it running elsewhere?`)
          return false
        }
        const succeeded = yield* deps.controller.succeed(deps.gid, incarnation).pipe(Effect.result)
        if (succeeded._tag === "Failure") {
          const error = succeeded.failure
          return error._tag === "ControllerError" && error.code === "GidRetired" ? self.#retire(error) : false
        }
        deps.log(`group ${deps.gid}: a new incarnation of a gid used before; carrying on from its predecessor`)
        return false
      }
      // A fresh incarnation that took over its gid acts only once it stands where its predecessor
      // stopped (checked on every round until applied: a fast-forward lost to a leader change is
      // proposed again, never skipped).
      if (fresh) {
        const info = yield* deps.controller.incarnation(deps.gid)
        if (info === undefined || info.incarnation !== incarnation) return false
        if (info.startAfter > 0) {
          yield* self.#fastForward(info.startAfter)
          return false
        }
      }
      self.state = { kind: "registered", incarnation, configNum }
      return true
    }).pipe(Effect.catchCause(() => Effect.succeed(false)))
  }

  #retire(error: ControllerError): boolean {
    this.state = { kind: "retired", message: error.message }
    this.deps.log(`group ${this.deps.gid} refuses to take part: ${error.message}`)
    return false
  }

  /**
   * Starts the group at configuration `startAfter`, the last one its predecessor acted in (the
   * controller allows a successor only when that configuration no longer has the gid), so every
   * later configuration, including ones that joined and left the gid before this incarnation
   * came up, is carried out in turn.
   */
  #fastForward(startAfter: number): Effect.Effect<void, ControllerError | Timeout | unknown> {
    const { deps } = this
    return Effect.gen(function* () {
      const start = yield* deps.configAt(startAfter)
      if (start === undefined || isMember(start, deps.gid)) return
      if (start.num === 0) return
      const prevConfig = yield* deps.configAt(start.num - 1)
      if (prevConfig === undefined) return
      const holders: ShardHolder[] = []
      for (let shard = 0; shard < start.shards.length; shard++) {
        if (start.shards[shard] !== noGroup) continue
        // The last configuration that gave the shard to a group says who keeps it parked.
        for (let num = start.num - 1; num > 0; num--) {
          const config = yield* deps.configAt(num)
          if (config === undefined) return
          const owner = config.shards[shard] ?? noGroup
          if (owner === noGroup) continue
          holders.push({ shard, gid: owner, servers: config.groups[String(owner)] ?? [], configNum: num + 1 })
          break
        }
      }
      yield* deps.submit({ type: "fastForward", config: start, prevConfig, holders })
    })
  }
}
