import { Context, Duration, Effect, Layer, Schedule } from "effect"
import { decodeEnvelope, ENVELOPE_VERSION, encodeEnvelope } from "./envelope.ts"
import { type CallError, RemoteError, Timeout, Unreachable } from "./errors.ts"
import type { Method } from "./method.ts"
import { Transport, type TransportShape } from "./transport.ts"

export interface CallOptions {
  /** How long one attempt waits for a reply before the request is sent again. */
  readonly attemptTimeoutMs?: number
  /** Overall bound for the call, retries included; then `Timeout` (outcome unknown). */
  readonly deadlineMs?: number
  /** First backoff between attempts; doubles per attempt up to maxBackoffMs, with jitter. */
  readonly backoffMs?: number
  readonly maxBackoffMs?: number
}

export const defaultCallOptions: Required<CallOptions> = {
  attemptTimeoutMs: 250,
  deadlineMs: 10_000,
  backoffMs: 10,
  maxBackoffMs: 500,
}

export type Handler<Req, Res> = (request: Req, from: string) => Effect.Effect<Res> | Res
export type OneWayHandler = (payload: unknown, from: string) => void

interface Waiter {
  onReply(payload: unknown): void
  onError(code: string, message: string): void
}

class AttemptTimedOut {
  readonly _tag = "AttemptTimedOut"
}

export interface RpcNodeShape {
  readonly address: string
  readonly transport: TransportShape
  /** Registers the handler for a method. Duplicated requests reach it: exactly-once is the state machine's job. */
  handle<Req, Res>(method: Method<Req, Res>, handler: Handler<Req, Res>): void
  /** Sends a request and waits for its reply, retrying on loss, until the deadline. */
  call<Req, Res>(
    to: string,
    method: Method<Req, Res>,
    request: Req,
    options?: CallOptions,
  ): Effect.Effect<Res, CallError>
  /** Registers the consumer of a one-way channel (Raft's peer messages). It validates its own payloads. */
  onOneWay(channel: string, handler: OneWayHandler): void
  /**
   * Fire-and-forget datagram on a channel; loss is the consumer protocol's business. `reply`
   * marks answers (Raft's responses) for the simulated network's lab model.
   */
  sendOneWay(to: string, channel: string, payload: unknown, reply?: boolean): boolean
  /** Observes how long each served request took, from arrival to reply (for latency metrics). */
  observeRequests(observer: RequestObserver | undefined): void
}

export type RequestObserver = (method: string, seconds: number) => void

/**
 * Request/response and one-way messaging over one transport: every server and client has one.
 */
export const makeRpcNode = (transport: TransportShape): RpcNodeShape => {
  const handlers = new Map<string, (payload: unknown, from: string, id: number) => void>()
  const oneWay = new Map<string, OneWayHandler>()
  const waiters = new Map<number, Waiter>()
  let observer: RequestObserver | undefined
  // A random start keeps a restarted client from matching replies meant for its previous life.
  let nextId = Math.floor(Math.random() * 2 ** 40)

  const reply = (to: string, id: number, payload: unknown) =>
    transport.send(to, encodeEnvelope([ENVELOPE_VERSION, 1, id, payload]), true)
  const replyError = (to: string, id: number, code: string, message: string) =>
    transport.send(to, encodeEnvelope([ENVELOPE_VERSION, 2, id, code, message]), true)

  transport.onMessage((from, bytes) => {
    const envelope = decodeEnvelope(bytes)
    if (envelope === undefined) {
      transport.stats.drop("malformed")
      return
    }
    switch (envelope[1]) {
      case 0: {
        const [, , id, method, payload] = envelope
        const handler = handlers.get(method)
        if (handler === undefined) replyError(from, id, "UnknownMethod", `no method ${method}`)
        else handler(payload, from, id)
        return
      }
      case 1:
        waiters.get(envelope[2])?.onReply(envelope[3])
        return
      case 2:
        waiters.get(envelope[2])?.onError(envelope[3], envelope[4])
        return
      case 3: {
        const handler = oneWay.get(envelope[2])
        if (handler === undefined) transport.stats.drop("malformed")
        else handler(envelope[3], from)
        return
      }
    }
  })

  const handle = <Req, Res>(method: Method<Req, Res>, handler: Handler<Req, Res>): void => {
    handlers.set(method.name, (payload, from, id) => {
      const request = method.decodeRequest(payload)
      if (request === undefined) {
        transport.stats.drop("malformed")
        replyError(from, id, "BadRequest", `request for ${method.name} failed validation`)
        return
      }
      const start = observer === undefined ? 0 : performance.now()
      const served = () => observer?.(method.name, (performance.now() - start) / 1000)
      let result: Effect.Effect<Res> | Res
      try {
        result = handler(request, from)
      } catch (error) {
        replyError(from, id, "HandlerFailed", error instanceof Error ? error.message : String(error))
        return
      }
      if (!Effect.isEffect(result)) {
        reply(from, id, result)
        served()
        return
      }
      Effect.runCallback(result, {
        onExit: (exit) => {
          if (exit._tag === "Success") reply(from, id, exit.value)
          else replyError(from, id, "HandlerFailed", "handler failed")
          served()
        },
      })
    })
  }

  const call = <Req, Res>(
    to: string,
    method: Method<Req, Res>,
    request: Req,
    options: CallOptions = {},
  ): Effect.Effect<Res, CallError> => {
    const o = { ...defaultCallOptions, ...options }
    return Effect.suspend(() => {
      const id = nextId++
      const bytes = encodeEnvelope([ENVELOPE_VERSION, 0, id, method.name, request])
      // Every attempt re-sends the same id, so a late reply to an earlier attempt still completes the call.
      const attempt = Effect.callback<Res, AttemptTimedOut | Unreachable | RemoteError>((resume) => {
        waiters.set(id, {
          onReply(payload) {
            const response = method.decodeResponse(payload)
            if (response === undefined) {
              transport.stats.drop("malformed")
              resume(
                Effect.fail(
                  new RemoteError({ to, method: method.name, code: "BadResponse", message: "reply failed validation" }),
                ),
              )
            } else {
              resume(Effect.succeed(response))
            }
          },
          onError(code, message) {
            resume(Effect.fail(new RemoteError({ to, method: method.name, code, message })))
          },
        })
        if (!transport.send(to, bytes)) {
          resume(Effect.fail(new Unreachable({ to, reason: "the message could not be sent" })))
        }
        return Effect.sync(() => waiters.delete(id))
      }).pipe(
        Effect.timeoutOrElse({
          duration: Duration.millis(o.attemptTimeoutMs),
          orElse: () => Effect.fail(new AttemptTimedOut()),
        }),
      )
      const retried = attempt.pipe(
        Effect.retry({
          schedule: Schedule.exponential(Duration.millis(o.backoffMs)).pipe(
            Schedule.modifyDelay(({ duration }) =>
              Effect.succeed(Duration.min(duration, Duration.millis(o.maxBackoffMs))),
            ),
            Schedule.jittered,
          ),
          while: (error) => error instanceof AttemptTimedOut,
        }),
      )
      return retried.pipe(
        Effect.timeoutOrElse({
          duration: Duration.millis(o.deadlineMs),
          orElse: () => Effect.fail(new Timeout({ to, method: method.name, afterMs: o.deadlineMs })),
        }),
        Effect.catchIf(
          (error): error is AttemptTimedOut => error instanceof AttemptTimedOut,
          () => Effect.fail(new Timeout({ to, method: method.name, afterMs: o.deadlineMs })),
        ),
        Effect.ensuring(Effect.sync(() => waiters.delete(id))),
      )
    })
  }

  return {
    get address() {
      return transport.address
    },
    transport,
    handle,
    call,
    onOneWay(channel, handler) {
      oneWay.set(channel, handler)
    },
    sendOneWay(to, channel, payload, reply = false) {
      return transport.send(to, encodeEnvelope([ENVELOPE_VERSION, 3, channel, payload]), reply)
    },
    observeRequests(next) {
      observer = next
    },
  }
}

export class RpcNode extends Context.Service<RpcNode, RpcNodeShape>()("@kv/rpc/RpcNode") {
  static readonly layer: Layer.Layer<RpcNode, never, Transport> = Layer.effect(RpcNode, Transport.useSync(makeRpcNode))
}
