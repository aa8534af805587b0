/**
 * One call in progress: its attempts, its single timer, and its end. An object with its state in
 * fields, not a nest of closures: every request of every client makes one, and each closure was
 * garbage the collector had to find (seven fewer functions per call, counted with `bun:jsc`'s heap
 * statistics; BENCHMARKS.md, 2026-12-08).
 */
import { Effect } from "effect"
import { ENVELOPE_VERSION, encodeEnvelope } from "./envelope.ts"
import { type CallError, PermissionDenied, RemoteError, Timeout, Unreachable } from "./errors.ts"
import type { Method } from "./method.ts"
import { type RttEstimator, THIN_CALLS } from "./rttEstimator.ts"
import type { TimerHandle, Timers } from "./timers.ts"
import type { TransportShape } from "./transport.ts"

/** A call in progress, registered under the request id of each attempt; `id` names the attempt answered. */
export interface Waiter {
  onReply(id: number, payload: unknown): void
  onError(id: number, code: string, message: string): void
  /** The server asks the caller to prove its address: resend with this token. */
  onChallenge(token: Uint8Array): void
}

/** What the node lends its calls: the wire, the clock, round trips, and its table of waiters. */
export interface CallSite {
  readonly transport: TransportShape
  readonly timers: Timers
  readonly rtt: RttEstimator
  readonly waiters: Map<number, Waiter>
  nextId(): number
  callStarted(to: string): void
  callEnded(to: string): void
  callsInFlight(to: string): number
}

export interface CallSettings {
  readonly attemptTimeoutMs: number | undefined
  readonly deadlineMs: number
  readonly backoffMs: number
  readonly maxBackoffMs: number
  readonly onUnanswered: ((abandon: () => void) => void) | undefined
}

/** How many times one call resends at once on a challenge; later ones wait for the next attempt. */
const IMMEDIATE_CHALLENGE_RESENDS = 2

/** What the call's one timer does when it runs out. */
const OnTimer = {
  /** The attempt went unanswered: tell the caller (if it asked), then resend or back off. */
  Unanswered: 0,
  /** The backoff is over: send again. */
  Send: 1,
  /** The deadline came: the call ends as a Timeout. */
  Deadline: 2,
} as const
type OnTimer = (typeof OnTimer)[keyof typeof OnTimer]

export class PendingCall<Req, Res> implements Waiter {
  private token: Uint8Array | undefined = undefined
  private challengeResends = 0
  private retries = 0
  private timer: TimerHandle | undefined = undefined
  private onTimer: OnTimer = OnTimer.Unanswered
  private done = false
  private sends = 0
  /** Attempt k went out as ids[k] at sentAt[k]. */
  private readonly ids: number[] = []
  private readonly sentAt: number[] = []
  private readonly startedAt: number
  private readonly deadline: number

  constructor(
    private readonly site: CallSite,
    private readonly to: string,
    private readonly method: Method<Req, Res>,
    private readonly request: Req,
    private readonly wireName: string,
    private readonly settings: CallSettings,
    private readonly resume: (outcome: Effect.Effect<Res, CallError>) => void,
  ) {
    // One clock read serves the deadline, the first send's time and its timer.
    this.startedAt = site.timers.now()
    this.deadline = this.startedAt + settings.deadlineMs
  }

  start(): void {
    this.site.callStarted(this.to)
    this.send()
  }

  /** The caller went away (interrupted): nothing more is sent and a late reply is ignored. */
  readonly cancel = (): void => {
    if (this.done) return
    this.done = true
    this.release()
  }

  private release(): void {
    const site = this.site
    site.callEnded(this.to)
    if (this.timer !== undefined) site.timers.clearTimer(this.timer)
    for (const id of this.ids) site.waiters.delete(id)
  }

  private finish(outcome: Effect.Effect<Res, CallError>): void {
    if (this.done) return
    this.done = true
    this.release()
    this.resume(outcome)
  }

  /** The single timer's callback, made once per call. */
  private readonly fire = (): void => {
    this.timer = undefined
    switch (this.onTimer) {
      case OnTimer.Deadline:
        this.finish(
          Effect.fail(new Timeout({ to: this.to, method: this.method.name, afterMs: this.settings.deadlineMs })),
        )
        return
      case OnTimer.Send:
        this.send()
        return
      case OnTimer.Unanswered:
        this.unanswered()
        return
    }
  }

  /** Arms the timer for `ms`, cut short by the deadline (which then fails the call). */
  private arm(ms: number, then: OnTimer, now: number): void {
    const remaining = this.deadline - now
    if (remaining <= ms) {
      this.onTimer = OnTimer.Deadline
      this.timer = this.site.timers.setTimer(Math.max(0, remaining), this.fire)
    } else {
      this.onTimer = then
      this.timer = this.site.timers.setTimer(ms, this.fire)
    }
  }

  private send(): void {
    if (this.done) return
    const site = this.site
    const id = site.nextId()
    const bytes =
      this.token === undefined
        ? encodeEnvelope([ENVELOPE_VERSION, 0, id, this.wireName, this.request])
        : encodeEnvelope([ENVELOPE_VERSION, 5, id, this.wireName, this.request, this.token])
    const now = this.sends === 0 ? this.startedAt : site.timers.now()
    site.waiters.set(id, this)
    this.ids.push(id)
    this.sentAt.push(now)
    this.sends++
    if (this.sends > 1) site.transport.stats.requestsResent++
    if (!site.transport.send(this.to, bytes)) {
      this.finish(Effect.fail(new Unreachable({ to: this.to, reason: "the message could not be sent" })))
      return
    }
    const fixed = this.settings.attemptTimeoutMs
    if (fixed !== undefined) this.arm(fixed, OnTimer.Unanswered, now)
    else {
      const thin = site.callsInFlight(this.to) <= THIN_CALLS
      this.arm(site.rtt.rtoMs(this.to, this.sends - 1, thin), OnTimer.Unanswered, now)
    }
  }

  private unanswered(): void {
    const onUnanswered = this.settings.onUnanswered
    if (onUnanswered !== undefined) {
      onUnanswered(() =>
        this.finish(
          Effect.fail(
            new Timeout({ to: this.to, method: this.method.name, afterMs: this.site.timers.now() - this.startedAt }),
          ),
        ),
      )
      if (this.done) return
    }
    if (this.settings.attemptTimeoutMs !== undefined) this.backOff()
    else this.send()
  }

  /** Exponential backoff with ±20% jitter between an unanswered attempt and the next. */
  private backOff(): void {
    const { backoffMs, maxBackoffMs } = this.settings
    const timers = this.site.timers
    const delay = Math.min(backoffMs * 2 ** this.retries, maxBackoffMs) * (0.8 + 0.4 * timers.random())
    this.retries++
    this.arm(delay, OnTimer.Send, timers.now())
  }

  private measure(id: number): void {
    const at = this.sentAt[this.ids.indexOf(id)]
    const site = this.site
    if (at !== undefined) site.rtt.sample(this.to, site.timers.now() - at, site.callsInFlight(this.to))
  }

  onReply(id: number, payload: unknown): void {
    if (this.done) return
    this.measure(id)
    const response = this.method.decodeResponse(payload)
    if (response !== undefined) this.finish(Effect.succeed(response))
    else {
      this.site.transport.stats.drop("malformed")
      this.finish(
        Effect.fail(
          new RemoteError({
            to: this.to,
            method: this.method.name,
            code: "BadResponse",
            message: "reply failed validation",
          }),
        ),
      )
    }
  }

  onError(id: number, code: string, message: string): void {
    if (this.done) return
    this.measure(id)
    this.finish(
      Effect.fail(
        code === "PermissionDenied"
          ? new PermissionDenied({ to: this.to, method: this.method.name, message })
          : new RemoteError({ to: this.to, method: this.method.name, code, message }),
      ),
    )
  }

  onChallenge(token: Uint8Array): void {
    if (this.done) return
    this.site.transport.stats.challengesReceived++
    // Every later attempt carries the token too, so a lost resend is repaired by the usual retry.
    this.token = token
    if (this.challengeResends >= IMMEDIATE_CHALLENGE_RESENDS) return
    this.challengeResends++
    if (this.timer !== undefined) this.site.timers.clearTimer(this.timer)
    this.timer = undefined
    this.send()
  }
}
