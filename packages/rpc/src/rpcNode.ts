import { Context, Effect, Layer } from "effect"
import { AddressProof, type AddressProofOptions } from "./addressProof.ts"
import { decodeEnvelope, ENVELOPE_VERSION, encodeEnvelope } from "./envelope.ts"
import type { CallError } from "./errors.ts"
import type { Sender } from "./frame.ts"
import { type Role, roleAllows } from "./keyRing.ts"
import type { Method } from "./method.ts"
import { type CallSettings, type CallSite, PendingCall, type Waiter } from "./pendingCall.ts"
import { RttEstimator, type RttOptions } from "./rttEstimator.ts"
import { Timers } from "./timers.ts"
import { Transport, type TransportShape } from "./transport.ts"

export interface CallOptions {
  /**
   * How long one attempt waits for a reply before the request is sent again (after a backoff).
   * Default: the destination's retransmission timeout from measured round trips (rttEstimator.ts),
   * doubled on each resend (after six resends that wait one timeout each when at most three calls
   * are in flight to that destination), and no backoff beyond that doubling.
   */
  readonly attemptTimeoutMs?: number
  /** Overall bound for the call, retries included; then `Timeout` (outcome unknown). */
  readonly deadlineMs?: number
  /** First backoff between attempts; doubles per attempt up to maxBackoffMs, with jitter. */
  readonly backoffMs?: number
  readonly maxBackoffMs?: number
  /**
   * Called each time an attempt's timer runs out without a reply, before the request goes out
   * again, with a function that ends the call at once as a `Timeout`. For a caller that can learn
   * elsewhere, while it waits, that this server is no longer the one to ask.
   */
  readonly onUnanswered?: (abandon: () => void) => void
}

export const defaultCallOptions: Required<Omit<CallOptions, "attemptTimeoutMs" | "onUnanswered">> = {
  deadlineMs: 10_000,
  backoffMs: 10,
  maxBackoffMs: 500,
}

export type Handler<Req, Res> = (request: Req, from: string) => Effect.Effect<Res> | Res
export type OneWayHandler = (payload: unknown, from: string) => void

/**
 * A served request: its decoded payload, who sent it, its id, its size (which bounds the reply) and
 * the key it came under (its reply goes back under the same key).
 */
type Dispatch = (payload: unknown, from: string, id: number, requestBytes: number, keyId: number) => void

export interface RpcNodeShape {
  readonly address: string
  readonly transport: TransportShape
  /** Round trips measured by this node's calls, per destination, and the timeouts derived from them. */
  readonly rtt: RttEstimator
  /** Registers the handler for a method. Duplicated requests reach it: exactly-once is the state machine's job. */
  handle<Req, Res>(method: Method<Req, Res>, handler: Handler<Req, Res>): void
  /**
   * Registers a handler that answers through `reply` (exactly once, possibly later) instead of an
   * Effect: no fiber per request, for servers on their hot path.
   */
  handleWith<Req, Res>(
    method: Method<Req, Res>,
    handler: (request: Req, from: string, reply: (response: Res) => void) => void,
  ): void
  /** Sends a request and waits for its reply, retrying on loss, until the deadline. */
  call<Req, Res>(
    to: string,
    method: Method<Req, Res>,
    request: Req,
    options?: CallOptions,
  ): Effect.Effect<Res, CallError>
  /** Registers the consumer of a one-way channel (Raft's peer messages). It validates its own payloads. */
  onOneWay(channel: string, handler: OneWayHandler): void
  /** Fire-and-forget datagram on a channel; loss is the consumer protocol's business. */
  sendOneWay(to: string, channel: string, payload: unknown): boolean
  /** Observes how long each served request took, from arrival to reply (for latency metrics). */
  observeRequests(observer: RequestObserver | undefined): void
  /**
   * Addresses that may get replies of any size without proving themselves first (the node's
   * configured peers). Others get a reply larger than `maxReplyFactor` times their request only
   * after one challenge round trip (see addressProof.ts).
   */
  trust(addresses: Iterable<string>): void
  /**
   * Serves requests of these methods to callers whose key grants at least `role`. Every other
   * method needs the server role, as do one-way messages (Raft): a client key is refused them, a
   * request with `PermissionDenied`, a one-way message dropped and counted as "forbidden". Without
   * keys every caller has the server role (see keyRing.ts).
   */
  allow(role: Role, methods: Iterable<{ readonly name: string } | string>): void
  /**
   * A view of this node for one of several services sharing its socket (replicas of different
   * shard groups in one process): what it registers, and the requests and one-way messages it
   * sends, carry `name@scope` on the wire, so one datagram can carry every group's messages to the
   * same peer process. A qualified message is served by the handler registered under that scope,
   * or else by one registered on the node itself (a controller asked by a group); an unqualified
   * one, by a scope's handler while only one scope has registered that name. `scoped` of a view
   * scopes the node anew: a call to another group must name that group's scope.
   */
  scoped(scope: string): RpcNodeShape
}

export type RequestObserver = (method: string, seconds: number) => void

export interface RpcNodeOptions extends AddressProofOptions {
  /** Time, timers and randomness for calls; the host's unless a simulation provides its own. */
  readonly timers?: Timers
  /**
   * The services handlers' effects run with (a simulation's clock and scheduler); the layer passes
   * those it was built with.
   */
  readonly services?: Context.Context<never>
  /** Bounds of the retransmission timeout of calls that give no attemptTimeoutMs. */
  readonly rtt?: RttOptions
}

/**
 * Request/response and one-way messaging over one transport: every server and client has one.
 */
export const makeRpcNode = (transport: TransportShape, options: RpcNodeOptions = {}): RpcNodeShape => {
  const handlers = new Map<string, Dispatch>()
  /** Plain names served for a scope (not by the node itself), by kind: no fallback from `name@other` to them. */
  const aliased = { handlers: new Map<string, string>(), oneWay: new Map<string, string>() }
  const timers = options.timers ?? Timers.defaultValue()
  const runCallback = options.services === undefined ? Effect.runCallback : Effect.runCallbackWith(options.services)
  const proof = new AddressProof(options.now === undefined ? { ...options, now: () => timers.now() } : options)
  const oneWay = new Map<string, OneWayHandler>()
  /** Method name → the least role served; absent: "server". */
  const access = new Map<string, Role>()
  const waiters = new Map<number, Waiter>()
  const rtt = new RttEstimator(options.rtt)
  /** Calls not yet finished, by destination: about how many round-trip samples arrive from it per round trip. */
  const callsInFlight = new Map<string, number>()
  const callStarted = (to: string) => callsInFlight.set(to, (callsInFlight.get(to) ?? 0) + 1)
  const callEnded = (to: string) => {
    const n = (callsInFlight.get(to) ?? 1) - 1
    if (n <= 0) callsInFlight.delete(to)
    else callsInFlight.set(to, n)
  }
  /** Request observers by scope ("" for the node's own handlers). */
  const observers = new Map<string, RequestObserver>()
  // A random start keeps a restarted client from matching replies meant for its previous life.
  let nextId = Math.floor(timers.random() * 2 ** 40)
  const site: CallSite = {
    transport,
    timers,
    rtt,
    waiters,
    nextId: () => nextId++,
    callStarted,
    callEnded,
    callsInFlight: (to) => callsInFlight.get(to) ?? 0,
  }

  /**
   * Replies are believed only under a key this node trusts as a server's: its own calls go out
   * under its own key, and a client key held by someone else must not answer (forge) them.
   */
  const answersCall = (sender: Sender): boolean => {
    if (sender.role === "server") return true
    transport.stats.drop("forbidden")
    return false
  }

  /** Every answer leaves here: a large one to an unproven address becomes a challenge. */
  const sendAnswer = (to: string, id: number, requestBytes: number, keyId: number, answer: Uint8Array): boolean => {
    if (proof.mayReply(to, requestBytes, answer.length)) return transport.send(to, answer, keyId)
    transport.stats.repliesChallenged++
    const challenge = encodeEnvelope([ENVELOPE_VERSION, 4, id, proof.tokenFor(to)])
    // No real request is this small (it names a method); a forged one gets nothing at all.
    if (challenge.length > proof.maxReplyFactor * requestBytes) return false
    return transport.send(to, challenge, keyId)
  }
  const reply = (to: string, id: number, requestBytes: number, keyId: number, payload: unknown) =>
    sendAnswer(to, id, requestBytes, keyId, encodeEnvelope([ENVELOPE_VERSION, 1, id, payload]))
  const replyError = (to: string, id: number, requestBytes: number, keyId: number, code: string, message: string) =>
    sendAnswer(to, id, requestBytes, keyId, encodeEnvelope([ENVELOPE_VERSION, 2, id, code, message]))
  const dispatch = (
    from: string,
    id: number,
    method: string,
    payload: unknown,
    requestBytes: number,
    sender: Sender,
  ) => {
    // One lookup on the hot path; a qualified name without a handler of its scope falls back.
    let name: string | undefined = method
    let handler = handlers.get(method)
    if (handler === undefined) {
      name = fallbackOf(handlers, aliased.handlers, method)
      handler = name === undefined ? undefined : handlers.get(name)
    }
    // A server still starting has no handler yet: "unknown" makes a client try another server.
    if (name === undefined || handler === undefined) {
      const why =
        aliased.handlers.get(method) === SHARED
          ? `${method} is served here for several scopes: name one (${method}@<scope>)`
          : `no method ${method}`
      replyError(from, id, requestBytes, sender.keyId, "UnknownMethod", why)
      return
    }
    const needed = access.get(name) ?? "server"
    if (!roleAllows(sender.role, needed)) {
      transport.stats.refuse(sender.role)
      // Short, so that the refusal of even a small request needs no address proof round trip.
      replyError(from, id, requestBytes, sender.keyId, "PermissionDenied", `needs ${needed}, key is ${sender.role}`)
      return
    }
    handler(payload, from, id, requestBytes, sender.keyId)
  }

  transport.onMessage((from, bytes, sender) => {
    const envelope = decodeEnvelope(bytes)
    if (envelope === undefined) {
      transport.stats.drop("malformed")
      return
    }
    switch (envelope[1]) {
      case 0:
        dispatch(from, envelope[2], envelope[3], envelope[4], bytes.length, sender)
        return
      case 1:
        if (answersCall(sender)) waiters.get(envelope[2])?.onReply(envelope[2], envelope[3])
        return
      case 2:
        if (answersCall(sender)) waiters.get(envelope[2])?.onError(envelope[2], envelope[3], envelope[4])
        return
      case 3: {
        if (sender.role !== "server") {
          transport.stats.drop("forbidden")
          return
        }
        const channel = envelope[2]
        let handler = oneWay.get(channel)
        if (handler === undefined) {
          const name = fallbackOf(oneWay, aliased.oneWay, channel)
          handler = name === undefined ? undefined : oneWay.get(name)
        }
        if (handler === undefined) transport.stats.drop("malformed")
        else handler(envelope[3], from)
        return
      }
      case 4:
        if (answersCall(sender)) waiters.get(envelope[2])?.onChallenge(envelope[3])
        return
      case 5: {
        const [, , id, method, payload, token] = envelope
        // A stale or forged token is no proof; the request is still served, within the size bound.
        if (proof.prove(from, token)) transport.stats.addressesProven++
        dispatch(from, id, method, payload, bytes.length, sender)
        return
      }
    }
  })

  const handle = <Req, Res>(method: Method<Req, Res>, handler: Handler<Req, Res>, scope = ""): void => {
    register(handlers, aliased.handlers, method.name, scope, (payload, from, id, requestBytes, keyId) => {
      const request = method.decodeRequest(payload)
      if (request === undefined) {
        transport.stats.drop("malformed")
        replyError(from, id, requestBytes, keyId, "BadRequest", `request for ${method.name} failed validation`)
        return
      }
      const observer = observers.get(scope)
      const start = observer === undefined ? 0 : timers.now()
      const served = () => observer?.(method.name, (timers.now() - start) / 1000)
      let result: Effect.Effect<Res> | Res
      try {
        result = handler(request, from)
      } catch (error) {
        replyError(
          from,
          id,
          requestBytes,
          keyId,
          "HandlerFailed",
          error instanceof Error ? error.message : String(error),
        )
        return
      }
      if (!Effect.isEffect(result)) {
        reply(from, id, requestBytes, keyId, result)
        served()
        return
      }
      runCallback(result, {
        onExit: (exit) => {
          if (exit._tag === "Success") reply(from, id, requestBytes, keyId, exit.value)
          else replyError(from, id, requestBytes, keyId, "HandlerFailed", "handler failed")
          served()
        },
      })
    })
  }

  const handleWith = <Req, Res>(
    method: Method<Req, Res>,
    handler: (request: Req, from: string, reply: (response: Res) => void) => void,
    scope = "",
  ): void => {
    register(handlers, aliased.handlers, method.name, scope, (payload, from, id, requestBytes, keyId) => {
      const request = method.decodeRequest(payload)
      if (request === undefined) {
        transport.stats.drop("malformed")
        replyError(from, id, requestBytes, keyId, "BadRequest", `request for ${method.name} failed validation`)
        return
      }
      const observer = observers.get(scope)
      const start = observer === undefined ? 0 : timers.now()
      try {
        handler(request, from, (response) => {
          reply(from, id, requestBytes, keyId, response)
          observer?.(method.name, (timers.now() - start) / 1000)
        })
      } catch (error) {
        replyError(
          from,
          id,
          requestBytes,
          keyId,
          "HandlerFailed",
          error instanceof Error ? error.message : String(error),
        )
      }
    })
  }

  /**
   * One callback, one object and at most one host timer per call, no fibers: this is every
   * client's hot path (see BENCHMARKS.md). The call stays registered as a waiter for its whole
   * life, so a late reply to an earlier attempt still completes it, even during a backoff.
   *
   * Each attempt goes out under a request id of its own, all of them the same call's, so a reply
   * says which copy it answers and is a round-trip sample from that copy's send (as TCP's
   * timestamps make every ack one). With one id for every copy, Karn's rule allowed samples only
   * from calls sent once: the slow replies, those that outlived the timeout, were never measured,
   * so the timeout stayed at the fast ones' and a busy server got every slow request again (a
   * quarter of all requests under 64 clients with batched replies).
   */
  const call = <Req, Res>(
    to: string,
    method: Method<Req, Res>,
    request: Req,
    options: CallOptions = {},
    wireName: string = method.name,
  ): Effect.Effect<Res, CallError> =>
    Effect.callback<Res, CallError>((resume) => {
      const settings: CallSettings = {
        attemptTimeoutMs: options.attemptTimeoutMs,
        deadlineMs: options.deadlineMs ?? defaultCallOptions.deadlineMs,
        backoffMs: options.backoffMs ?? defaultCallOptions.backoffMs,
        maxBackoffMs: options.maxBackoffMs ?? defaultCallOptions.maxBackoffMs,
        onUnanswered: options.onUnanswered,
      }
      const pending = new PendingCall(site, to, method, request, wireName, settings, resume)
      pending.start()
      return Effect.sync(pending.cancel)
    })

  const sendOneWay = (to: string, channel: string, payload: unknown): boolean =>
    transport.send(to, encodeEnvelope([ENVELOPE_VERSION, 3, channel, payload]))
  const trust = (addresses: Iterable<string>): void => proof.trust(addresses)
  const observe = (scope: string, next: RequestObserver | undefined): void => {
    if (next === undefined) observers.delete(scope)
    else observers.set(scope, next)
  }
  const nameOf = (method: { readonly name: string } | string): string =>
    typeof method === "string" ? method : method.name

  /** The node itself (scope "") or its view for one scope: names on the wire are `name@scope`. */
  const view = (scope: string): RpcNodeShape => {
    const wire = scope === "" ? (name: string) => name : (name: string) => `${name}@${scope}`
    return {
      get address() {
        return transport.address
      },
      transport,
      rtt,
      handle: (method, handler) => handle(method, handler, scope),
      handleWith: (method, handler) => handleWith(method, handler, scope),
      call: (to, method, request, options) => call(to, method, request, options, wire(method.name)),
      onOneWay: (channel, handler) => register(oneWay, aliased.oneWay, channel, scope, handler),
      sendOneWay: (to, channel, payload) => sendOneWay(to, wire(channel), payload),
      observeRequests: (next) => observe(scope, next),
      trust,
      allow(role, methods) {
        for (const method of methods) {
          access.set(wire(nameOf(method)), role)
          // A scope's plain alias (see register) is served under the same role.
          access.set(nameOf(method), role)
        }
      },
      scoped(next) {
        if (next === "" || next.includes("@")) {
          throw new RangeError(`a scope is a non-empty name without "@", got ${JSON.stringify(next)}`)
        }
        return view(next)
      },
    }
  }
  return view("")
}

/** Marks a plain name more than one scope registered: only qualified messages reach them. */
const SHARED = "@"

/**
 * Registers `value` under `name` for `scope`: as `name@scope`, and as the plain `name` too while no
 * other scope registers it (so a peer that does not qualify still reaches a socket serving one scope).
 */
const register = <V>(
  map: Map<string, V>,
  aliases: Map<string, string>,
  name: string,
  scope: string,
  value: V,
): void => {
  if (scope === "") {
    map.set(name, value)
    aliases.delete(name)
    return
  }
  map.set(`${name}@${scope}`, value)
  const owner = aliases.get(name)
  if (owner === undefined && map.has(name)) return // the node's own handler keeps the plain name
  if (owner === undefined || owner === scope) {
    map.set(name, value)
    aliases.set(name, scope)
  } else if (owner !== SHARED) {
    map.delete(name)
    aliases.set(name, SHARED)
  }
}

/**
 * Where a message for `wireName` that has no handler of its own goes: for `name@scope`, the node's
 * own `name` (never another scope's alias of it); undefined when none.
 */
const fallbackOf = (map: ReadonlyMap<string, unknown>, aliases: ReadonlyMap<string, string>, wireName: string) => {
  const at = wireName.indexOf("@")
  if (at <= 0) return undefined
  const plain = wireName.slice(0, at)
  return map.has(plain) && !aliases.has(plain) ? plain : undefined
}

export class RpcNode extends Context.Service<RpcNode, RpcNodeShape>()("@kv/rpc/RpcNode") {
  static readonly layer: Layer.Layer<RpcNode, never, Transport> = RpcNode.layerWith({})

  /**
   * With options for the reply-size bound (trusted peers, factor, proof lifetime). Timers come from
   * the `Timers` reference unless given.
   */
  static layerWith(options: RpcNodeOptions): Layer.Layer<RpcNode, never, Transport> {
    return Layer.effect(
      RpcNode,
      Effect.gen(function* () {
        const transport = yield* Transport
        const timers = options.timers ?? (yield* Timers)
        const services = options.services ?? (yield* Effect.context<never>())
        return makeRpcNode(transport, { ...options, timers, services })
      }),
    )
  }
}
