/**
 * The polls a leader holds for watchers until their range changes or their wait ends (long
 * polling over UDP). Bounded: at most `maxHeld` polls, one per watcher and address (a resend of a
 * held poll replaces it), each a small record and a reply callback, so memory is O(maxHeld)
 * whatever the watchers do. A watcher that stops polling costs nothing once its poll's wait is
 * over. Writes never wait for watchers: after a command is applied, the polls whose range it
 * touched are answered (a reply is sent, never awaited); polls are indexed by key, so a write
 * costs a map lookup plus one check per held prefix poll of its scope.
 */
import type { WatchEvent } from "./history.ts"
import type { WatchPollRequest } from "./protocol.ts"

export interface HeldPollsOptions {
  /** Most polls held at once; a poll beyond is answered at once with a hint to come back later. */
  readonly maxHeld?: number
  /** Longest a poll is held, whatever it asks. */
  readonly maxWaitMs?: number
}

export const defaultMaxHeldPolls = 10_000
export const defaultMaxWaitMs = 30_000

/** How long a watcher refused for lack of room waits before it polls again. */
const FULL_RETRY_MS = 1_000

/** What the service answers a poll with now (a reply of its protocol), and whether it may be held. */
export interface PollAnswer<Reply> {
  readonly reply: Reply
  /** Nothing to send yet: the poll may be held. */
  readonly empty: boolean
  /** The revision the answer covers up to (for empty answers: nothing in range up to here). */
  readonly revision: number
}

export interface PollService<Reply> {
  /** Answers `request` from the current state. */
  answer(request: WatchPollRequest): PollAnswer<Reply>
  /** The reply that sends a watcher elsewhere (this replica no longer leads). */
  wrongLeader(): Reply
  /** `empty` reply asking the watcher to poll again after `retryMs`. */
  busy(answer: PollAnswer<Reply>, retryMs: number): Reply
}

interface Held<Reply> {
  readonly id: string
  request: WatchPollRequest
  readonly scope: number
  readonly deadline: number
  reply: (reply: Reply) => void
}

/** The scope of a poll: its shard in the sharded service, 0 in kvraft. */
const scopeOf = (request: WatchPollRequest): number => request.shard ?? 0

export class HeldPolls<Reply> {
  readonly maxHeld: number
  readonly maxWaitMs: number
  readonly #byId = new Map<string, Held<Reply>>()
  /** Exact-key polls by scope and key. */
  readonly #byKey = new Map<string, Set<Held<Reply>>>()
  /** Prefix polls by scope. */
  readonly #prefixes = new Map<number, Set<Held<Reply>>>()
  /**
   * Per scope, the revision of the last event `changed` was given. Every poll held then was checked
   * against every event since it was held, so it is known to have nothing up to here: a poll
   * answered when its wait ends starts here, and a store that drops old events meanwhile does not
   * make it Compacted.
   */
  readonly #seen = new Map<number, number>()

  constructor(
    readonly service: PollService<Reply>,
    options: HeldPollsOptions = {},
  ) {
    this.maxHeld = options.maxHeld ?? defaultMaxHeldPolls
    this.maxWaitMs = options.maxWaitMs ?? defaultMaxWaitMs
  }

  /** Called when a poll is held while none was: the sweep sleeps while nothing is held. */
  onFirstHeld: () => void = () => {}

  get size(): number {
    return this.#byId.size
  }

  /** Answers `request` now, or holds it until its range changes or its wait (as of `now`) ends. */
  poll(request: WatchPollRequest, from: string, now: number, reply: (reply: Reply) => void): void {
    const id = `${from}|${request.watcher}`
    const previous = this.#byId.get(id)
    // A resend of the poll held (its first copy's reply would be the same): the wait stays as it was.
    if (previous !== undefined && previous.request.poll === request.poll) {
      previous.reply = reply
      return
    }
    // A late copy of an earlier poll (the network duplicated it): the watcher waits for the held one.
    if (previous !== undefined && request.poll < previous.request.poll) return
    // The watcher has moved on: its older poll needs no answer.
    if (previous !== undefined) this.#remove(previous)
    const answer = this.service.answer(request)
    const waitMs = Math.min(request.waitMs ?? 0, this.maxWaitMs)
    if (!answer.empty || request.afterRevision === undefined || waitMs <= 0) {
      reply(answer.reply)
      return
    }
    if (this.#byId.size >= this.maxHeld) {
      reply(this.service.busy(answer, FULL_RETRY_MS))
      return
    }
    // Nothing in range up to answer.revision: later checks start there.
    const held: Held<Reply> = {
      id,
      request: advance(request, answer.revision),
      scope: scopeOf(request),
      deadline: now + waitMs,
      reply,
    }
    this.#byId.set(id, held)
    this.#index(held).add(held)
    if (this.#byId.size === 1) this.onFirstHeld()
  }

  /**
   * Events were applied in `scope` (undefined events: the state changed wholesale, a snapshot or
   * a shard's move): the held polls they may concern are answered if they now have something.
   */
  changed(scope: number, events: readonly WatchEvent[] | undefined): void {
    if (this.#byId.size === 0) return
    const candidates = new Set<Held<Reply>>()
    if (events === undefined) {
      for (const held of this.#byId.values()) if (held.scope === scope) candidates.add(held)
    } else {
      for (const event of events) {
        for (const held of this.#byKey.get(keyId(scope, event.key)) ?? []) candidates.add(held)
      }
      const prefixes = this.#prefixes.get(scope)
      if (prefixes !== undefined) {
        for (const held of prefixes) {
          if (events.some((e) => e.key.startsWith(held.request.key))) candidates.add(held)
        }
      }
    }
    for (const held of candidates) this.#recheck(held)
    const last = events?.[events.length - 1]
    if (last !== undefined) this.#seen.set(scope, last.modRevision)
  }

  /** Every scope changed at once (a snapshot installed). */
  changedAll(): void {
    for (const held of [...this.#byId.values()]) this.#recheck(held)
  }

  /** Answers the polls whose wait is over; every poll when this replica no longer leads. */
  sweep(now: number, leading: boolean): void {
    for (const held of [...this.#byId.values()]) {
      if (!leading) this.#finish(held, this.service.wrongLeader())
      else if (held.deadline <= now) {
        this.#finish(held, this.service.answer(advance(held.request, this.#seen.get(held.scope) ?? 0)).reply)
      }
    }
  }

  /** Answers every held poll (the server stops): they go elsewhere. */
  close(): void {
    for (const held of [...this.#byId.values()]) this.#finish(held, this.service.wrongLeader())
  }

  #recheck(held: Held<Reply>): void {
    const answer = this.service.answer(held.request)
    if (!answer.empty) this.#finish(held, answer.reply)
    else held.request = advance(held.request, answer.revision)
  }

  #finish(held: Held<Reply>, reply: Reply): void {
    this.#remove(held)
    held.reply(reply)
  }

  #index(held: Held<Reply>): Set<Held<Reply>> {
    if (held.request.prefix) {
      let set = this.#prefixes.get(held.scope)
      if (set === undefined) {
        set = new Set()
        this.#prefixes.set(held.scope, set)
      }
      return set
    }
    const id = keyId(held.scope, held.request.key)
    let set = this.#byKey.get(id)
    if (set === undefined) {
      set = new Set()
      this.#byKey.set(id, set)
    }
    return set
  }

  #remove(held: Held<Reply>): void {
    this.#byId.delete(held.id)
    const set = this.#index(held)
    set.delete(held)
    if (set.size > 0) return
    if (held.request.prefix) this.#prefixes.delete(held.scope)
    else this.#byKey.delete(keyId(held.scope, held.request.key))
  }
}

const keyId = (scope: number, key: string): string => `${scope}|${key}`

/** `request` asking only for revisions above `revision` (when that is further). */
const advance = (request: WatchPollRequest, revision: number): WatchPollRequest =>
  request.afterRevision !== undefined && revision > request.afterRevision
    ? { ...request, afterRevision: revision }
    : request
